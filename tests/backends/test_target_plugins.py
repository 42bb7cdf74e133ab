"""Which of the broker's plugins a spawned target loads, and what each one takes along.

Real installed distributions: hypothesis from the pinned environment, and
small ones written into a directory put on ``sys.path`` (their metadata
read by ``importlib.metadata``, as for any installed package).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_isolate.backends.inject import INJECTED_DISTRIBUTIONS
from pytest_isolate.backends.target_plugins import _Closure, _closure, _normal

CARRIED = {_normal(name) for name in INJECTED_DISTRIBUTIONS}


def _distribution(site: Path, name: str, files: dict[str, str], requires: tuple[str, ...]) -> None:
    for relative, text in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(metadata) + "\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{name} = {name}_plugin\n")
    record = [*files, f"{info.name}/METADATA", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{path},,\n" for path in record))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))


def test_hypothesis_goes_with_its_requirement_and_every_top_level_module() -> None:
    closure = _closure("hypothesis", set(CARRIED))
    assert isinstance(closure, _Closure)
    assert {"hypothesis", "sortedcontainers"} <= {_normal(d) for d in closure.distributions}
    assert {"hypothesis", "_hypothesis_pytestplugin", "sortedcontainers"} <= set(closure.modules)
    assert "__pycache__" not in closure.modules


def test_a_plugin_whose_requirement_is_not_installed_is_named_with_it(site: Path) -> None:
    _distribution(site, "needy", {"needy_plugin.py": ""}, ("not-installed-anywhere>=1",))
    assert _closure("needy", set(CARRIED)) == "needs not-installed-anywhere in the target"


def test_a_requirement_with_code_compiled_for_no_python_stops_the_plugin(site: Path) -> None:
    _distribution(site, "native", {"native/__init__.py": "", "native/speedups.so": ""}, ())
    _distribution(site, "wrapper", {"wrapper_plugin.py": ""}, ("native",))
    assert _closure("wrapper", set(CARRIED)) == (
        "compiled code in native (from its requirement native)"
    )


def test_a_requirement_already_carried_is_not_copied_again(site: Path) -> None:
    _distribution(site, "light", {"light_plugin.py": ""}, ("pytest>=8", "pluggy"))
    closure = _closure("light", set(CARRIED))
    assert isinstance(closure, _Closure)
    assert closure.distributions == ["light"]
    assert closure.modules == ["light_plugin"]
