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
    for area in ("core/", "policy/", "jail/", "agent/", "structure/", "tree/", "channel/"):
        assert any(name.startswith(area) for name in fast), area
