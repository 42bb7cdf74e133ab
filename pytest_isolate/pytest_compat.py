"""pytest's private surface that the plugin needs, in one place, by version.

Each function names the pytest versions it was checked on. When pytest moves
something, this module is the one to change.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

# Running one item's protocol in a target, as pytest's runner does, with its
# warnings capture, and writing to nowhere: checked on pytest 8.0 to 9.2.
from _pytest._io import TerminalWriter as TerminalWriter
from _pytest._io.saferepr import saferepr as saferepr
from _pytest.runner import runtestprotocol as runtestprotocol
from _pytest.warnings import catch_warnings_for_item as catch_warnings_for_item


def _failed_subtests(config: pytest.Config) -> Any:
    """pytest's count of failed ``subtests`` per test, or None before pytest 9.0.

    Checked on pytest 9.0.0 (keyed by node id) and 9.2.0 (keyed by ``report.id``).
    """
    try:
        from _pytest.subtests import failed_subtests_key
    except ImportError:  # pytest 8: no subtests fixture, nothing counted
        return None
    return config.stash.get(failed_subtests_key, None)


def _subtest_key(report: Any) -> Any:
    return getattr(report, "id", report.nodeid)  # pytest 9.2 / 9.0


def failed_subtests_of(config: pytest.Config, report: Any) -> int:
    """How many ``subtests`` of ``report``'s test failed, as pytest counted them here.

    Only the ``subtests`` fixture counts: a unittest ``subTest`` that fails is
    reported but not counted, and the parent test then passes (pytest 9.x).
    """
    counts = _failed_subtests(config)
    return 0 if counts is None else int(counts.get(_subtest_key(report), 0))


def set_failed_subtests(config: pytest.Config, report: Any, count: int) -> None:
    """Make the broker's count what the target's was: the parent's verdict reads it."""
    counts = _failed_subtests(config)
    if counts is not None and count:
        counts[_subtest_key(report)] = count


def is_subtest_report(report: Any) -> bool:
    """A report of one ``subtests.test()`` block or unittest ``subTest`` (pytest 9.0-9.2)."""
    try:
        from _pytest.subtests import SubtestReport
    except ImportError:  # pytest 8: subtests are not reported apart
        return False
    return isinstance(report, SubtestReport)


# -- the broker's configuration and capture: checked on pytest 8.0 to 9.2 --------------
def configure_for_command(config: pytest.Config) -> None:
    """Run ``pytest_configure`` for a command that ends the run early (``--isolate-doctor``)."""
    config._do_configure()


def unconfigure_after_command(config: pytest.Config) -> None:
    config._ensure_unconfigure()


def global_captures(config: pytest.Config) -> list[Any]:
    """pytest's fd capture of stdin, stdout and stderr (None for each one not captured)."""
    capman = config.pluginmanager.get_plugin("capturemanager")
    multi = getattr(capman, "_global_capturing", None)
    return [getattr(multi, name, None) for name in ("in_", "out", "err")]


def ensure_basetemp(config: pytest.Config) -> None:
    """Make the run's ``basetemp`` now, in this process, as the first ``tmp_path`` would.

    A forked target then inherits it and makes its ``tmp_path`` there, where
    pytest keeps it after the run (``tmp_path_retention_policy``); left to the
    target, it would be made under the target's private scratch space and
    removed with it, and a given ``--basetemp`` would be emptied by each target.
    """
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        factory.getbasetemp()


def basetemp_made(config: pytest.Config) -> bool:
    """Has this run made its ``basetemp`` yet (so a fork made now inherits it)?"""
    factory = getattr(config, "_tmp_path_factory", None)
    return factory is None or getattr(factory, "_basetemp", None) is not None


def make_tmp_path(config: pytest.Config, name: str) -> Any:
    """A new numbered directory where a plain run's ``tmp_path`` would be, or None.

    As pytest's ``tmp_path`` fixture names it (the test's name, its odd
    characters replaced, cut at 30), under the run's basetemp, so that
    ``tmp_path_retention_count`` and ``--basetemp`` treat it as theirs.
    """
    import re

    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return None
    return factory.mktemp(re.sub(r"[\W]", "_", name)[:30], numbered=True)


def use_basetemp(config: pytest.Config, base: Any) -> bool:
    """Make ``tmp_path`` and ``tmp_path_factory`` create under ``base`` in this process.

    False when the tmpdir plugin is not active (``-p no:tmpdir``).
    """
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return False
    factory._basetemp = base
    factory._given_basetemp = base
    return True


# -- a target that runs one item of the broker's session: checked on pytest 8.0 to 9.2 --
def forget_session_finalizers(session: pytest.Session) -> None:
    """Drop the finalizers of fixtures set up so far in this process's session."""
    stack = getattr(getattr(session, "_setupstate", None), "stack", None)
    if isinstance(stack, dict):
        for finalizers, _exc in stack.values():
            finalizers.clear()


def set_up_session_fixtures(item: pytest.Item, root: str) -> None:
    """Set up here, before a fork, the project's session fixtures ``item`` uses.

    The session node goes on pytest's setup stack, so the fixtures register
    their teardown with it and pytest tears them down at this process's
    session end. A fixture that fails is cached failed, as pytest caches it:
    the test forked next reports the error as its own setup error.
    """
    from _pytest.outcomes import OutcomeException

    session = item.session
    state = session._setupstate
    if session not in state.stack:
        state.setup(session)  # type: ignore[arg-type]  # a node of its own chain
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        fixturedefs = (getattr(info, "name2fixturedefs", None) or {}).get(name)
        if not fixturedefs:
            continue
        fixturedef = fixturedefs[-1]
        if fixturedef.scope != "session" or not _of_project(fixturedef, root):
            continue
        with contextlib.suppress(Exception, OutcomeException):
            item._request.getfixturevalue(name)  # type: ignore[attr-defined]


def _of_project(fixturedef: Any, root: str) -> bool:
    """Is the fixture's function the project's (under ``root``), not a plugin's?"""
    code = getattr(fixturedef.func, "__code__", None)
    source = getattr(code, "co_filename", "")
    return source.startswith(root.rstrip("/") + "/") and "site-packages" not in source


def forget_project_fixtures(item: pytest.Item, root: str, keep_session: bool = False) -> int:
    """Set up the project's fixtures above function scope afresh in this process.

    A forked target inherits the values of the broker's session, package,
    module and class fixtures that a plain test happened to build first; an
    isolated test must not see a fixture's value depend on test order. The
    fixtures whose function lives under ``root`` (the project's, not a
    plugin's) are forgotten here, so the target sets them up itself and tears
    them down with itself. ``keep_session``: the session fixtures were set up
    on purpose in the process this one forked from (``set_up_session_fixtures``),
    and are kept. Returns how many were forgotten.
    """
    info = getattr(item, "_fixtureinfo", None)
    forgotten = 0
    for fixturedefs in (getattr(info, "name2fixturedefs", None) or {}).values():
        for fixturedef in fixturedefs:
            if fixturedef.scope == "function" or fixturedef.cached_result is None:
                continue
            if keep_session and fixturedef.scope == "session":
                continue
            if not _of_project(fixturedef, root):
                continue
            fixturedef.cached_result = None
            fixturedef._finalizers.clear()
            forgotten += 1
    return forgotten


def mute_terminal_reporter(reporter: Any, writer: Any) -> None:
    """Send the terminal reporter's output to ``writer`` (a ``TerminalWriter``)."""
    reporter._tw = writer


def xfail_of(item: pytest.Item) -> Any:
    """The item's evaluated ``xfail`` mark (``run``, ``raises``, ``reason``), or None."""
    from _pytest.skipping import evaluate_xfail_marks

    return evaluate_xfail_marks(item)


# -- untrusted mode: checked on pytest 8.0 to 9.2 ---------------------------------------
def read_ini_file(inipath: Any) -> dict[str, Any]:
    """A configuration file's pytest settings as written (no overrides applied)."""
    from _pytest.config.findpaths import load_config_dict_from_file

    return dict(load_config_dict_from_file(inipath) or {})


def make_mark(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> pytest.MarkDecorator:
    """A mark built from validated data, whatever its name (``--strict-markers`` applies later).

    ``pytest.mark.NAME(*args)`` would treat a lone callable argument as the
    decorated function, and refuse an unregistered name at once.
    """
    return pytest.MarkDecorator(pytest.Mark(name, args, kwargs, _ispytest=True), _ispytest=True)
