"""The broker's other pytest plugins, carried into spawned targets.

A container or a jail on a foreign root starts a pytest of its own, with
plugin autoloading off (the target's installed plugins may not be the
broker's). A plugin that shapes how a test runs (pytest-randomly's seeding,
pytest-timeout's ``func_only`` timer, hypothesis's settings) must be there
too, or the test runs differently than in a plain run. So each plugin loaded
in the broker from an installed distribution is copied into the target with
the injected packages and named with ``-p``; the ones that act only in the
broker (distribution, coverage, reruns: this plugin handles those) are not.
A plugin that needs more than pytest and its own dependencies (hypothesis's
plugin needs hypothesis, which is the project's to install in its image), or
that has compiled code built for no particular Python, is not carried: it is
named once in the run's header.

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


def _missing_requirements(project: str, carried: set[str]) -> list[str]:
    """The requirements of ``project`` (for this Python, no extras) that are not carried."""
    from packaging.requirements import Requirement

    missing = []
    for text in importlib.metadata.requires(project) or ():
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if _normal(requirement.name) not in carried:
            missing.append(requirement.name)
    return missing


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
        tops = sorted({ep.value.split(":", 1)[0].split(".", 1)[0] for ep in points})
        compiled = [top for top in tops if _compiled_for_one_python(top)]
        if compiled:
            left_out.append((project, f"compiled code in {', '.join(compiled)}"))
            continue
        missing = _missing_requirements(project, carried)
        if missing:
            left_out.append((project, f"needs {', '.join(missing)} in the target"))
            continue
        names.extend(ep.name for ep in points)
        modules.extend(tops)
        distributions.append(project)
    return TargetPlugins(tuple(names), tuple(modules), tuple(distributions), tuple(left_out))
