"""Untrusted mode's pytest hooks: its options, the early lock-down, and its session plugin.

Loaded with ``pytest_isolate.plugin`` (listed in its ``pytest_plugins``) and
idle unless ``--isolate-untrusted`` is given. The lock-down happens in
``pytest_load_initial_conftests`` (tryfirst), the earliest hook an installed
plugin gets, and before pytest imports any conftest.py: conftests are
switched off, import paths that point into the project are removed, and the
project's ini is checked for settings pytest already applied (refused) or
that were overridden (named in the header).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pytest_isolate.pytest_compat import read_ini_file
from pytest_isolate.untrusted.settings import (
    SettingsVerdict,
    judge_settings,
    overridden_keys,
)

VERDICT_KEY = pytest.StashKey[SettingsVerdict]()
SESSION_PLUGIN = "isolate-untrusted-session"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("isolate", "pytest-isolate: run tests in isolated targets")
    group.addoption(
        "--isolate-untrusted",
        dest="isolate_untrusted",
        default=None,
        metavar="TARGET",
        help="untrusted project: collect and run every test in TARGET (container:IMAGE); "
        "this process imports no conftest.py and no test module. Start it with "
        "python -P -m pytest_isolate.untrusted so the project's ini cannot act first",
    )
    group.addoption(
        "--isolate-untrusted-env",
        dest="isolate_untrusted_env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="pass NAME (from this environment, or with VALUE) to the untrusted tests; "
        "nothing else of this environment reaches them (repeatable)",
    )
    group.addoption(
        "--isolate-untrusted-allow",
        dest="isolate_untrusted_allow",
        default=None,
        metavar="WHAT,...",
        help="let the project's marks loosen untrusted mode: network (network=True runs in a "
        "second container with a network), limits (mark limits may exceed the run's)",
    )


def untrusted_mode(config: pytest.Config) -> bool:
    return bool(getattr(config.known_args_namespace, "isolate_untrusted", None)) or bool(
        getattr(config.option, "isolate_untrusted", None)
    )


def read_raw_ini(inipath: Path | None) -> dict[str, object]:
    """The project's pytest settings as written in its file, before any override."""
    if inipath is None:
        return {}
    try:
        return read_ini_file(inipath)
    except Exception:  # a file pytest itself accepted; unreadable now means tampering
        return {"addopts": "<unreadable>"}


def classify_sys_path(
    entries: list[str], rootpath: Path, invocation: Path
) -> tuple[list[str], list[str]]:
    """Import path entries to drop (the checkout itself) and entries that live inside it.

    ``''``, the invocation dir and the rootdir are where ``python -m pytest``
    and ``pythonpath`` point: dropped. Anything deeper inside the checkout (a
    virtual environment created in it, say) may hold files the project
    shipped, such as a ``.pth`` file that already ran: the run is refused.
    """
    root = os.path.realpath(rootpath)
    exact = {"", ".", root, os.path.realpath(invocation)}
    drop, inside = [], []
    for entry in entries:
        real = os.path.realpath(entry or ".")
        if entry in exact or real in exact:
            drop.append(entry)
        elif (real + os.sep).startswith(root + os.sep):
            inside.append(entry)
    return drop, inside


def strip_project_from_sys_path(rootpath: Path, invocation: Path) -> None:
    """Remove the checkout from ``sys.path``; refuse if the broker's environment lives in it."""
    drop, inside = classify_sys_path(list(sys.path), rootpath, invocation)
    if inside:
        raise pytest.UsageError(
            f"pytest-isolate: untrusted mode refused: the broker's import path includes "
            f"{inside[0]!r}, inside the untrusted checkout {str(rootpath)!r}; install the "
            "tools that run the tests (pytest, plugins, their virtual environment) outside it"
        )
    sys.path[:] = [entry for entry in sys.path if entry not in drop]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    if not untrusted_mode(early_config):
        return
    namespace = early_config.known_args_namespace
    namespace.noconftest = True  # read by pytest's own (trylast) impl of this hook
    raw = read_raw_ini(early_config.inipath)
    verdict = judge_settings(raw, overridden_keys(getattr(namespace, "override_ini", None)))
    if verdict.applied_too_early:
        raise pytest.UsageError(verdict.refusal(str(early_config.inipath)))
    strip_project_from_sys_path(early_config.rootpath, early_config.invocation_params.dir)
    early_config.stash[VERDICT_KEY] = verdict


def pytest_configure(config: pytest.Config) -> None:
    if not untrusted_mode(config):
        return
    config.option.noconftest = True
    from pytest_isolate.untrusted.setup import make_session

    config.pluginmanager.register(
        make_session(config, config.stash.get(VERDICT_KEY, None)), SESSION_PLUGIN
    )
