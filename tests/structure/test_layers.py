"""The package's layers import one way: down, never up.

Built from the package's own source (every ``import`` and ``from ... import``
statement, those inside functions and under ``TYPE_CHECKING`` included, since
a type-only dependency couples the layers all the same). A layer may import
its own modules and any layer below it. docs/internals.md draws this map.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_isolate"

#: Lowest first. Each entry: the layer's name and the top-level names it holds.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        ("_version", "_package", "arches", "liveness", "pytest_compat", "spec", "threads"),
    ),
    ("wire", ("wire", "policy")),
    ("in-target", ("target",)),
    ("jail", ("jail",)),
    ("agent", ("agent",)),
    ("supervision", ("supervision",)),
    ("engines", ("container", "vm", "images")),
    ("backends", ("backends",)),
    ("integrations", ("integrations",)),
    ("session", ("broker",)),
    (
        "entry points",
        ("__init__", "plugin", "hookspecs", "doctor", "selftest", "untrusted", "__main__"),
    ),
]

#: Code that runs inside a target (a forked child, an agent in a container or
#: guest) must not pull in the broker's machinery.
IN_TARGET = ("target", "jail", "agent")
BROKER_ONLY = ("supervision", "backends", "integrations", "broker", "plugin")


def _top_name(module: str) -> str | None:
    """``pytest_isolate.wire.frames`` -> ``wire``; ``pytest_isolate`` -> ``__init__``."""
    parts = module.split(".")
    if parts[0] != "pytest_isolate":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _layer_of(top: str) -> int:
    for index, (_, names) in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"pytest_isolate.{top} is in no layer: add it to LAYERS")


def _submodule_or_package(name: str) -> str:
    """``from pytest_isolate import name``: a module of the package, or a name in ``__init__``."""
    if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file():
        return f"pytest_isolate.{name}"
    return "pytest_isolate"


def _imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import of the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts)
        if module.endswith(".__init__") and module.count(".") > 1:
            module = module[: -len(".__init__")]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
                if node.module == "pytest_isolate":  # ``from pytest_isolate import x``
                    names = [_submodule_or_package(alias.name) for alias in node.names]
            else:
                continue
            found.extend((module, name, node.lineno) for name in names)
    return found


def _package_imports() -> list[tuple[str, str, str, str, int]]:
    rows = []
    for module, imported, line in _imports():
        source, target = _top_name(module), _top_name(imported)
        if source is None or target is None or source == target:
            continue
        rows.append((module, source, imported, target, line))
    return rows


def test_every_module_is_in_a_layer() -> None:
    tops = {path.relative_to(PACKAGE).parts[0] for path in PACKAGE.rglob("*.py")}
    tops = {top[:-3] if top.endswith(".py") else top for top in tops}
    for top in tops:
        _layer_of(top)


def test_no_layer_imports_a_layer_above_it() -> None:
    upward = [
        f"{module}:{line} imports {imported} "
        f"({LAYERS[_layer_of(source)][0]} -> {LAYERS[_layer_of(target)][0]})"
        for module, source, imported, target, line in _package_imports()
        if _layer_of(target) > _layer_of(source)
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("inside", IN_TARGET)
def test_code_that_runs_in_a_target_imports_no_broker_machinery(inside: str) -> None:
    reached = [
        f"{module}:{line} imports {imported}"
        for module, source, imported, target, line in _package_imports()
        if source == inside and target in BROKER_ONLY
    ]
    assert not reached, "\n".join(reached)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself: a module of a low layer that imports a high one is caught."""
    assert _layer_of("wire") < _layer_of("broker")
    tree = ast.parse("from pytest_isolate.broker.session import IsolateSession\n")
    node = tree.body[0]
    assert isinstance(node, ast.ImportFrom) and node.module is not None
    assert _layer_of(_top_name(node.module) or "") > _layer_of("wire")


def test_no_two_modules_share_a_name() -> None:
    """A module's name says what it holds: ``config`` in two packages says neither."""
    seen: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.stem not in ("__init__", "__main__"):
            seen.setdefault(path.stem, []).append(str(path.relative_to(PACKAGE)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}


def test_the_module_map_in_the_docs_is_current() -> None:
    """docs/internals.md lists every module with its docstring's first line."""
    script = PACKAGE.parent / "scripts" / "module-map"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
