"""The broker's other pytest plugins, carried into spawned targets.

A container or a jail on a foreign root starts a pytest of its own, with
plugin autoloading off (the target's installed plugins may not be the
broker's). A plugin that shapes how a test runs (pytest-randomly's seeding,
pytest-timeout's ``func_only`` timer, hypothesis's settings) must be there
too, or the test runs differently than in a plain run. So each plugin loaded
in the broker from an installed distribution is copied into the target with
the injected packages and named with ``-p``; the ones that act only in the
broker (distribution, coverage, reruns: this plugin handles those) are not.
A plugin's requirements go with it (hypothesis's plugin needs hypothesis and
sortedcontainers), so that a test sees the versions a plain run sees. A
plugin that needs something not installed here, or code compiled for no
particular Python (its own or a requirement's), is not carried: it is named
once in the run's header.

A guest runs the broker's own interpreter and site-packages, so it only
needs the ``-p`` names.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass

import pytest

from pytest_isolate.backends.inject import INJECTED_DISTRIBUTIONS

#: Distributions whose plugin acts in the broker only.
BROKER_SIDE = frozenset(
    {
        "pytest-isolate-sandbox",
        "pytest-xdist",
        "pytest-cov",
        "pytest-rerunfailures",
        "pytest-forked",
    }
)


@dataclass(frozen=True)
class TargetPlugins:
    """What a spawned target loads of the broker's plugins, and what it cannot."""

    entry_points: tuple[str, ...] = ()  # the names given to ``-p``
    modules: tuple[str, ...] = ()  # top-level modules to inject
    distributions: tuple[str, ...] = ()  # their metadata, for the entry points
    left_out: tuple[tuple[str, str], ...] = ()  # (distribution, why)

    def args(self) -> list[str]:
        return [arg for name in self.entry_points for arg in ("-p", name)]


def _compiled_for_one_python(module: str) -> bool:
    """Whether ``module`` ships extension modules not tagged with their ABI."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    if spec.submodule_search_locations is None:
        return spec.origin.endswith((".so", ".pyd")) and ".cpython-" not in spec.origin
    for location in spec.submodule_search_locations:
        for _directory, _dirs, files in os.walk(location):
            if any(f.endswith((".so", ".pyd")) and ".cpython-" not in f for f in files):
                return True
    return False


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(project: str) -> list[str]:
    """The requirements of ``project`` for this Python, without extras."""
    from packaging.requirements import Requirement

    names = []
    for text in importlib.metadata.requires(project) or ():
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def _top_level_modules(found: importlib.metadata.Distribution) -> list[str]:
    """The importable top-level modules a distribution installed (its ``RECORD``)."""
    tops: set[str] = set()
    for path in found.files or ():
        parts = path.parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] in ("..", "bin"):
            continue
        top = parts[0]
        if len(parts) == 1:
            if not top.endswith(".py"):
                continue
            top = top[: -len(".py")]
        if top.isidentifier() and top != "__pycache__":
            tops.add(top)
    return sorted(tops)


@dataclass
class _Closure:
    """A plugin's distribution and the requirements it brings, when all can be carried."""

    modules: list[str]
    distributions: list[str]


def _closure(project: str, carried: set[str]) -> _Closure | str:
    """What carrying ``project`` takes (its pure-Python requirements too), or why it cannot go.

    A requirement the target already gets (pytest, its dependencies) is not
    copied again; one that is not installed here, or that ships code compiled
    for one Python, stops the plugin from being carried.
    """
    closure = _Closure([], [])
    pending, seen = [project], set(carried)
    while pending:
        name = pending.pop()
        if _normal(name) in seen:
            continue
        seen.add(_normal(name))
        try:
            found = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return f"needs {name} in the target"
        tops = _top_level_modules(found)
        compiled = [top for top in tops if _compiled_for_one_python(top)]
        if compiled:
            return f"compiled code in {', '.join(compiled)}" + (
                "" if name == project else f" (from its requirement {name})"
            )
        closure.modules.extend(tops)
        closure.distributions.append(str(found.metadata["Name"]))
        pending.extend(_requirements(name))
    return closure


_PLUGINS = pytest.StashKey[TargetPlugins]()
_ANNOUNCED = pytest.StashKey[bool]()


def left_out_note(config: pytest.Config) -> str | None:
    """The run's one line on the plugins spawned targets do not load: the first time only."""
    if config.stash.get(_ANNOUNCED, False):
        return None
    config.stash[_ANNOUNCED] = True
    left_out = target_plugins(config).left_out
    if not left_out:
        return None
    named = "; ".join(f"{project} ({why})" for project, why in left_out)
    return f"plugins that container, vm and rootfs targets do not load: {named}"


def target_plugins(config: pytest.Config) -> TargetPlugins:
    """The broker's loaded plugins a spawned target should load too (worked out once a run)."""
    found = config.stash.get(_PLUGINS, None)
    if found is None:
        found = config.stash[_PLUGINS] = _target_plugins(config)
    return found


def _target_plugins(config: pytest.Config) -> TargetPlugins:
    names: list[str] = []
    modules: list[str] = []
    distributions: list[str] = []
    left_out: list[tuple[str, str]] = []
    seen: set[str] = set()
    carried = {_normal(name) for name in INJECTED_DISTRIBUTIONS}
    for _plugin, dist in config.pluginmanager.list_plugin_distinfo():
        project = str(dist.project_name)
        if project in BROKER_SIDE or project in seen:
            continue
        seen.add(project)
        try:
            found = importlib.metadata.distribution(project)
        except importlib.metadata.PackageNotFoundError:
            continue
        points = [ep for ep in found.entry_points if ep.group == "pytest11"]
        closure = _closure(project, carried)
        if isinstance(closure, str):
            left_out.append((project, closure))
            continue
        names.extend(ep.name for ep in points)
        modules.extend(m for m in closure.modules if m not in modules)
        distributions.extend(d for d in closure.distributions if d not in distributions)
        carried.update(_normal(d) for d in closure.distributions)
    return TargetPlugins(tuple(names), tuple(modules), tuple(distributions), tuple(left_out))
