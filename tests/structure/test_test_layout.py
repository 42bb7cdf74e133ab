"""The suite's own layout: the e2e list names real paths, and every package area has tests."""

from __future__ import annotations

from e2e_modules import E2E, TESTS


def test_every_e2e_entry_names_a_test_directory_or_module() -> None:
    missing = [entry for entry in E2E if not (TESTS / entry).exists()]
    assert missing == []


def test_the_fast_loop_keeps_the_units_of_every_layer() -> None:
    """``-m "not e2e"`` still tests frames, decisions, policies, jails, agents and layers."""
    fast = {
        path.relative_to(TESTS).as_posix()
        for path in TESTS.rglob("test_*.py")
        if not path.relative_to(TESTS).as_posix().startswith(E2E)
    }
    for area in (
        "broker/",
        "policy/",
        "jail/",
        "agent/",
        "structure/",
        "supervision/",
        "channel/",
        "wire/",
    ):
        assert any(name.startswith(area) for name in fast), area


def test_every_package_of_the_plugin_has_its_test_directory() -> None:
    """tests/ mirrors pytest_isolate/: a module's tests are where its package's name says."""
    package = TESTS.parent / "pytest_isolate"
    subpackages = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    missing = sorted(name for name in subpackages if not any((TESTS / name).glob("test_*.py")))
    assert missing == []
