"""Running one collected item inside a target and streaming its reports as frames.

Used by every forked target and by the in-target fork server of spawned
targets (container, vm), so reports look the same whatever the backend.
It runs the *whole* test protocol here (setup, call, teardown, fixtures),
with the broker's already-set-up fixtures left alone: their finalizers
belong to the broker, not to this target.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, Protocol

import pytest

from pytest_isolate.pytest_compat import (
    TerminalWriter,
    catch_warnings_for_item,
    failed_subtests_of,
    forget_project_fixtures,
    forget_session_finalizers,
    mute_terminal_reporter,
    runtestprotocol,
    saferepr,
    set_up_session_fixtures,
)
from pytest_isolate.target.benchmark_results import BenchmarkResults
from pytest_isolate.target.capture import debugging
from pytest_isolate.target.coverage_probe import TargetCoverage, untraced
from pytest_isolate.target.hypothesis_examples import ExampleDatabaseCopy
from pytest_isolate.target.kept_tmp_path import kept_tmp_path_frames
from pytest_isolate.wire.frames import encode_frame
from pytest_isolate.wire.reports import FAILED_SUBTESTS
from pytest_isolate.wire.test_frames import (
    MAX_WARNING_TEXT,
    done_frame,
    exit_frame,
    report_frame,
    setup_error_frame,
    warning_frame,
)

MAX_SECTION_CHARS = 1024 * 1024
FORWARDER_NAME = "isolate-report-forwarder"


def truncate_tail(text: str, limit: int = MAX_SECTION_CHARS) -> str:
    """Keep the end of a flood of output, and say how much was dropped."""
    if len(text) <= limit:
        return text
    dropped = len(text) - limit
    return f"[pytest-isolate: {dropped} characters truncated]\n" + text[-limit:]


class PluginResults(Protocol):
    """What another plugin keeps of a test in the target's process, to be sent after it."""

    def frames(self) -> Iterator[dict[str, Any]]: ...


#: Each takes the item before its protocol runs and returns None when it has
#: nothing to keep for that test (hypothesis's examples, pytest-benchmark's timings).
PLUGIN_RESULTS: tuple[Callable[[pytest.Item], PluginResults | None], ...] = (
    ExampleDatabaseCopy.begin,
    BenchmarkResults.begin,
)


class ByteSink(Protocol):
    """The target's end of a channel: a socket, or the shared ring's writer (``wire/shm.py``)."""

    def sendall(self, data: bytes, /) -> Any: ...


class FrameSender:
    """Blocking writer of frames on the target's end of the channel."""

    def __init__(self, channel: ByteSink) -> None:
        self.channel = channel

    def send(self, message: dict[str, Any]) -> None:
        self.channel.sendall(encode_frame(message))


class ReportForwarder:
    """Sends every report and warning of the target's test to the broker.

    Registered once, in the broker, before the first fork (registering a
    plugin costs about a millisecond, too much to pay in every target). It is
    idle there (``sender`` is None) and switched on in the target.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.sender: FrameSender | None = None
        #: what the target's test left: whether a phase failed, and its ``tmp_path``
        self.failed = False
        self.tmp_path: Path | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        """Note the test's ``tmp_path`` before teardown forgets the fixture values."""
        funcargs = getattr(item, "funcargs", None)
        if self.sender is None or not isinstance(funcargs, dict):
            return
        found = funcargs.get("tmp_path") or funcargs.get("tmpdir")
        if found is not None:
            self.tmp_path = Path(str(found))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.sender is None:
            return
        with untraced():
            self._forward(report, self.sender)

    def _forward(self, report: pytest.TestReport, sender: FrameSender) -> None:
        self.failed = self.failed or report.failed
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        if data is None:
            return
        data["sections"] = [[title, truncate_tail(body)] for title, body in data["sections"]]
        _scalar_subtest_kwargs(data)
        failed_subtests = failed_subtests_of(self.config, report)
        if failed_subtests and data.get("_report_type") != "SubTestReport":
            data[FAILED_SUBTESTS] = failed_subtests
        if isinstance(data.get("longrepr"), str):
            data["longrepr"] = truncate_tail(data["longrepr"])
        sender.send(report_frame(data))

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(
        self, warning_message: warnings.WarningMessage, when: str, nodeid: str
    ) -> None:
        if self.sender is None:  # the broker, or a historic replay at registration
            return
        self.sender.send(
            warning_frame(
                truncate_tail(str(warning_message.message), MAX_WARNING_TEXT),
                warning_message.category.__name__,
                str(warning_message.filename),
                int(warning_message.lineno or 0),
                when,
            )
        )


def _scalar_subtest_kwargs(data: dict[str, Any]) -> None:
    """Subtest kwargs as JSON scalars: pytest before 9.1 serializes them as given.

    pytest 9.1 and later already send ``saferepr`` strings. Before that a
    kwarg is the test's own object, which may not be JSON at all; scalars are
    kept (the broker's pytest shows them through ``saferepr`` as a plain run
    does), anything else is sent as its ``saferepr``.
    """
    context = data.get("_subtest.context")
    if isinstance(context, dict) and isinstance(context.get("kwargs"), dict):
        context["kwargs"] = {
            str(key): value
            if value is None or isinstance(value, (str, int, float, bool))
            else saferepr(value)
            for key, value in context["kwargs"].items()
        }


def _ini_flag(config: pytest.Config, name: str) -> bool:
    """A boolean ini key of the plugin (False in an agent started without the plugin's ini)."""
    try:
        return bool(config.getini(name))
    except ValueError:
        return False


_SESSION_SHARED = pytest.StashKey[bool]()


def share_session_fixtures(item: pytest.Item) -> None:
    """In an agent, before forking ``item``: set up the session fixtures it uses, once for all.

    Only with the ini's ``isolate_share_session_fixtures``; each test still
    runs in its own fork, so what one test changes in the value does not
    reach the next. The fixture code runs in the agent, which already ran
    the project's code when it collected.
    """
    config = item.config
    if _ini_flag(config, "isolate_share_session_fixtures"):
        set_up_session_fixtures(item, str(config.rootpath))
        config.stash[_SESSION_SHARED] = True


def _no_debugger(*args: Any, **kwargs: Any) -> None:
    """``breakpoint()`` in a target without a terminal: fail the test and say how to debug it."""
    pytest.fail(
        "breakpoint() cannot stop in an isolated test without a terminal: run with --pdb "
        "(process, seccomp and chroot targets then get the terminal) or with --no-isolate",
        pytrace=False,
    )


def forget_broker_finalizers(session: pytest.Session) -> None:
    """Fixtures the broker set up are torn down by the broker, never by a target.

    Without this, a session fixture set up in the broker (a server, a
    temporary directory) would have its finalizer run in every target that
    tears down, and destroy what the broker's later tests still use.
    """
    forget_session_finalizers(session)


def prepare_forwarder(config: pytest.Config) -> ReportForwarder:
    """The process's forwarder, registered on first use; call it before forking."""
    forwarder = config.pluginmanager.get_plugin(FORWARDER_NAME)
    if not isinstance(forwarder, ReportForwarder):
        forwarder = ReportForwarder(config)
        config.pluginmanager.register(forwarder, FORWARDER_NAME)
    return forwarder


_SILENCED = pytest.StashKey[bool]()
_SILENCER = pytest.StashKey["tuple[Any, list[object]]"]()


def prepare_silence(config: pytest.Config) -> None:
    """In the broker, before it forks a target: what the target needs to go quiet, made once.

    A target that made its own muted writer and looked through every plugin
    would copy about 90 pages of the broker's heap (copy-on-write) per test.
    """
    if _SILENCER not in config.stash:
        plugins = config.pluginmanager.get_plugins()
        # pytest-xdist's link to its controller
        links = [plugin for plugin in plugins if type(plugin).__name__ == "WorkerInteractor"]
        config.stash[_SILENCER] = (TerminalWriter(file=io.StringIO()), links)


def silence_broker_reporting(config: pytest.Config) -> None:
    """The broker prints; a target printing too would garble the terminal.

    The terminal reporter is muted rather than unregistered (unregistering
    costs about a millisecond per target); xdist's worker link must go, as
    its connection belongs to the broker. An agent silences itself once,
    before its first fork, and its children inherit that (scanning the
    plugins costs a millisecond per test in a TCG guest).
    """
    if config.stash.get(_SILENCED, False):
        return
    config.stash[_SILENCED] = True
    prepare_silence(config)
    writer, links = config.stash[_SILENCER]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        mute_terminal_reporter(reporter, writer)
    for plugin in links:
        config.pluginmanager.unregister(plugin)


def run_item(
    item: pytest.Item,
    sender: FrameSender,
    measure: Callable[[], TargetCoverage | None] = TargetCoverage.begin,
    send_tmp_path: bool = False,
) -> None:
    """Run ``item``'s full protocol here and stream its reports, then say ``done``.

    ``send_tmp_path``: this target's files are its own; a failing test's
    ``tmp_path`` is sent for the broker to keep (``target.kept_tmp_path``).
    """
    config = item.config
    silence_broker_reporting(config)
    forget_broker_finalizers(item.session)
    if not _ini_flag(config, "isolate_inherit_fixtures"):
        shared = config.stash.get(_SESSION_SHARED, False)
        forget_project_fixtures(item, str(config.rootpath), keep_session=shared)
    forwarder = prepare_forwarder(config)
    forwarder.sender = sender
    if not debugging(config):
        sys.breakpointhook = _no_debugger
    coverage = measure()
    kept = [found for begin in PLUGIN_RESULTS if (found := begin(item)) is not None]
    with catch_warnings_for_item(config=config, ihook=item.ihook, when="runtest", item=item):
        try:
            runtestprotocol(item, log=True, nextitem=None)
        except pytest.exit.Exception as exc:  # pytest.exit(), or q in the debugger
            sender.send(exit_frame(str(exc.msg), exc.returncode))
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if coverage is not None:
        for frame in coverage.frames(str(config.rootpath)):
            sender.send(frame)
    for results in kept:
        for frame in results.frames():
            sender.send(frame)
    if send_tmp_path and forwarder.failed and forwarder.tmp_path is not None:
        for frame in kept_tmp_path_frames(forwarder.tmp_path):
            sender.send(frame)
    sender.send(done_frame(os.getpid()))


def run_in_target(
    item: pytest.Item,
    sender: FrameSender,
    restrict: Callable[[], None],
    measure: Callable[[], TargetCoverage | None] = TargetCoverage.begin,
    send_tmp_path: bool = False,
) -> NoReturn:
    """In a freshly forked child: apply ``restrict``, run the item, and always exit.

    A failing restriction step is reported as ``setup-error`` (exit 3) and the
    test never starts; an internal error after that exits 4 with a traceback
    on the (captured) stderr. Nothing here ever returns into pytest's loop.
    """
    try:
        restrict()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            sender.send(setup_error_frame(f"{type(exc).__name__}: {exc}"))
        os._exit(3)
    code = 0
    try:
        run_item(item, sender, measure, send_tmp_path)
    except BaseException:
        with contextlib.suppress(Exception):
            sys.stderr.write(traceback.format_exc())
        code = 4
    finally:
        os._exit(code)
