"""Targets made by forking the broker after collection: the shared machinery.

The child already holds the collected item, so it applies its restrictions
and runs the protocol with no import or collection cost: the price floor is
one fork. Subclasses (process, seccomp, chroot) only say which restriction
steps their child applies (``restrict``) and what the broker does around it
(``prepare``, ``watch``); the order of the common steps lives here, once.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, cast

import pytest

from pytest_isolate.backends.base import Availability, TargetResult
from pytest_isolate.backends.target_watch import TargetWatch
from pytest_isolate.pytest_compat import basetemp_made, ensure_basetemp
from pytest_isolate.spec import IsolateSpec
from pytest_isolate.supervision.context import BrokerContext, LateExit
from pytest_isolate.supervision.outcome import result_of
from pytest_isolate.supervision.output_relay import OutputRelay, captures_fds
from pytest_isolate.supervision.supervisor import Supervision, TargetSupervisor
from pytest_isolate.supervision.tree import ProcessTree
from pytest_isolate.target.capture import capture_fds, output_tail, saved_terminal_fds
from pytest_isolate.target.hypothesis_examples import read_before_fork, reads_examples
from pytest_isolate.target.item_runner import (
    FrameSender,
    prepare_forwarder,
    prepare_silence,
    run_in_target,
)
from pytest_isolate.target.receipt import RECEIPT_PROPERTY, LayerMissing, namespace_inodes
from pytest_isolate.target.sequence import Privileges, TargetPlan, confine_target, detach_target
from pytest_isolate.wire.shm import ShmRing

CRASH_LOG_TAIL = 16 * 1024


@lru_cache(maxsize=1)
def broker_namespaces() -> dict[str, int]:
    """The broker's own namespaces, read once: a target's receipt is compared with them."""
    return namespace_inodes(("pid", "mnt", "net", "user", "ipc", "uts"))


#: Fixtures that make files under the run's ``basetemp``.
TMP_PATH_FIXTURES = frozenset({"tmp_path", "tmpdir", "tmp_path_factory", "tmpdir_factory"})


@dataclass
class ChildSetup:
    """What a backend's ``restrict`` needs inside the freshly forked child."""

    item: pytest.Item
    spec: IsolateSpec
    prepared: Any
    channel: socket.socket
    scratch: Path
    keep_fds: list[int]


def _read_crash_log(fd: int) -> str:
    size = os.fstat(fd).st_size
    start = max(0, size - CRASH_LOG_TAIL)
    return os.pread(fd, size - start, start).decode("utf-8", "replace") if size else ""


class ForkedBackend:
    """The ``process`` backend, and the base of every forked backend."""

    name = "process"
    summary = "a fresh forked process per test: crashes, hangs and leaks stay in it"
    keywords: Mapping[str, str] = {}
    #: network stays on unless the backend takes it away
    default_network = True
    #: most processes a test may have at once (cgroup pids controller) unless pids_limit= says
    default_pids_limit = 4096
    #: the target writes its ``tmp_path`` where the broker keeps it (False: to private
    #: space, so a failing test's files are sent back to be kept)
    shares_tmp_path = True

    def availability(self) -> Availability:
        if not hasattr(os, "fork") or not sys.platform.startswith("linux"):
            return Availability(
                False,
                f"forked targets need Linux (this is {sys.platform})",
                "run the isolated tests on Linux, or use --no-isolate",
            )
        return Availability(True, "fork, pidfd and rlimits available")

    def validate(self, spec: IsolateSpec, where: str) -> None:
        pass

    def variants(self, spec: IsolateSpec) -> list[IsolateSpec]:
        return [spec]

    def close(self) -> None:
        self._prepared_for.cache_clear()

    # -- hooks for subclasses --------------------------------------------
    def prepare(self, spec: IsolateSpec) -> Any:
        """Broker-side work done once per distinct spec (e.g. compiling a filter)."""
        return None

    def restrict(self, setup: ChildSetup) -> None:
        """The backend's own steps in the child (step 7 of ``target.sequence``): none here.

        A backend enters its namespaces and root here, and makes its
        ``basetemp``; what it keeps of its privileges it says in ``privileges``.
        """

    def privileges(self, setup: ChildSetup) -> Privileges:
        """The last steps for this target (limits, environment, drops, filter), in the child.

        ``process`` only bounds resources and adds the test's ``env=``: it is no
        security boundary, and a plain run's environment is what a test expects.
        """
        spec = setup.spec
        return Privileges(spec.mem_limit, spec.cpu_limit, dict(spec.env))

    def watch(
        self, spec: IsolateSpec, prepared: Any, pid: int, take_fds: Callable[[], list[int]]
    ) -> TargetWatch:
        """Broker-side, right after fork and before frames are read.

        ``take_fds`` returns descriptors the target passed with its frames so
        far (a seccomp listener); the watch owns and closes what it takes.
        """
        return TargetWatch()

    def prepare_scratch(self, scratch: Path, spec: IsolateSpec) -> None:
        """Broker-side: make the scratch directory usable by the target's user."""

    def restriction_fds(self) -> list[int]:
        """Descriptors ``restrict`` still needs (then closes); not kept for the test."""
        return []

    def target_gone(self, item: pytest.Item, spec: IsolateSpec) -> None:
        """Broker-side, once ``item``'s target and all it started are dead and reaped.

        Later than the test's report when the target's exit is collected
        after it (``EndingLaunch``), always before the next test starts.
        """

    def fork_target(self, item: pytest.Item, spec: IsolateSpec, prepared: Any) -> int:
        """The fork that makes the target; a backend may fork it into a namespace."""
        return os.fork()

    # -- the fixed sequence ---------------------------------------------
    @lru_cache(maxsize=64)  # noqa: B019 - one cache per backend instance is the point
    def _prepared_for(self, spec: IsolateSpec) -> Any:
        return self.prepare(spec)

    def forks(self, spec: IsolateSpec) -> bool:
        """Does ``spec`` run in a fork of the broker (False: a spawned agent, as a foreign root)?"""
        return True

    def run(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> TargetResult:
        launch = self._spare_for(item, spec, context) or self._launch(item, spec, context)
        ending: EndingLaunch | None = None
        try:
            context.tree.before_start(spec.pids_limit or self.default_pids_limit, spec.mem_limit)
            oom_kills_before = context.tree.oom_kills() if spec.mem_limit else 0
            try:
                if not launch.start(context.tree):  # the spare died while it waited: a new one
                    launch.discard()
                    launch = self._launch(item, spec, context)
                    launch.start(context.tree)
            except LayerMissing as exc:  # the kernel shows it outside its tree: it never starts
                launch.discard()
                return TargetResult(
                    failure=f"target could not be set up ({type(exc).__name__}: {exc})",
                    failure_kind="crash",
                )
            self._prepare_next(item, context)
            result, ending = self._supervise(launch, context, oom_kills_before)
            return result
        finally:
            if ending is None:
                launch.end_unsupervised(context.tree)
                launch.close()
                self.target_gone(item, spec)
            else:
                context.keep_ending(ending)

    def _spare_for(
        self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext
    ) -> ForkedLaunch | None:
        """The target forked for ``item`` while the previous test ran, if it still fits."""
        spare = context.take_spare(item)
        if not isinstance(spare, ForkedLaunch):
            return None
        # pytest-timeout's limit is applied later, and is the broker's alone.
        if replace(spare.spec, timeout=spec.timeout) != spec or not spare.waiting():
            spare.discard()
            return None
        return spare

    def _prepare_next(self, item: pytest.Item, context: BrokerContext) -> None:
        """Fork the next test's target now, while this one runs (``isolate_prefork``).

        Only where nothing the broker does before that test starts can change
        what its fork inherits: same backend, no examples to read for it
        after this test saved its own, ``basetemp`` already made.
        """
        following = context.next_item
        if following is None or following is item:
            return
        spec = context.spec_of(following)
        if spec is None or spec.backend != self.name or not self.forks(spec):
            return
        if reads_examples(following):
            return
        needs_basetemp = TMP_PATH_FIXTURES.intersection(getattr(following, "fixturenames", ()))
        if needs_basetemp and not basetemp_made(following.config):
            return
        try:
            spare = self._launch(following, spec, context)
        except Exception:  # no fork now (EAGAIN, a jail that failed): that test's own concern,
            return  # met again, and reported, when it forks its target itself
        context.tree.set_aside(spare.pid)
        context.keep_spare(spare)

    def _launch(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> ForkedLaunch:
        """Fork ``item``'s target; it detaches and waits for ``ForkedLaunch.start``."""
        prepared = self._prepared_for(spec)
        context.tree  # noqa: B018 - made here, in the broker: the child joins this one
        scratch = context.new_scratch("target")
        self.prepare_scratch(scratch, spec)
        broker_end, target_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # shm: frames go through a shared ring; the socket stays for handshakes and EOF.
        ring = ShmRing() if spec.channel == "shm" else None
        crash_log = os.memfd_create("pytest-isolate-crash-log", os.MFD_CLOEXEC)
        broker_pid = os.getpid()
        keep = [0, 1, 2, target_end.fileno(), crash_log, *capture_fds(item.config)]
        terminal = saved_terminal_fds(item.config)
        if ring is not None:
            keep += ring.child_fds()
        prepare_forwarder(item.config)
        prepare_silence(item.config)
        read_before_fork(item)  # hypothesis's examples: the target may not see the project
        broker_namespaces()  # read here, in the broker: the child's plan uses this cached value
        # Without fd capture (-s) the target's stdout and stderr come through the broker.
        output = None if captures_fds(item.config.getoption("capture", "fd")) else OutputRelay()
        if TMP_PATH_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            ensure_basetemp(item.config)
        # Objects the broker already has are moved out of the collector's reach
        # for the fork: a collection in the child would otherwise touch every
        # page of the broker's heap and copy it (copy-on-write), per test.
        launch = ForkedLaunch(
            item, spec, prepared, 0, broker_end, crash_log, scratch, ring, output, broker_pid
        )
        gc.freeze()
        try:
            pid = self.fork_target(item, spec, prepared)
        except BaseException:
            gc.unfreeze()
            target_end.close()
            launch.close()
            raise
        if pid:
            launch.pid = pid
            gc.unfreeze()
        if pid == 0:  # pragma: no cover - the child never returns
            broker_end.close()
            self._child(
                item,
                spec,
                prepared,
                target_end,
                crash_log,
                scratch,
                context,
                broker_pid,
                keep,
                terminal,
                ring,
                output,
            )
        try:
            target_end.close()
            if output is not None:
                output.after_fork()
        except BaseException:  # Ctrl-C, say: the caller never gets the launch to end
            launch.discard()
            raise
        return launch

    def _supervise(
        self, launch: ForkedLaunch, context: BrokerContext, oom_kills_before: int
    ) -> tuple[TargetResult, EndingLaunch | None]:
        """The test's result, and what is left to do once its target is gone.

        Under ``context.pipeline`` the result is made at the target's
        ``done``: it has sent every report and only exits. When the process
        tree holds nothing else (nothing the test started is left to kill
        before its report), its exit, the tree's emptying and the reaping
        (about 1.5 ms here, more for a large broker) then happen while the
        broker reports the test, and are collected (``EndingLaunch.settle``)
        before the next test starts. Not
        under ``-s``, whose output relay is drained once the target is gone.
        """
        item, spec, pid = launch.item, launch.spec, launch.pid
        fds_box: list[TargetSupervisor] = []
        watch = self.watch(spec, launch.prepared, pid, lambda: fds_box[0].take_fds())
        supervisor = TargetSupervisor(
            pid,
            launch.channel,
            item.nodeid,
            spec.timeout,
            context.limits,
            kill_tree=lambda: context.tree.kill(pid),
            kill_grace=context.kill_grace,
            alone=lambda: context.tree.holds_only(pid),
            extra_handlers=watch.handlers,
            ring=launch.ring.reader() if launch.ring is not None else None,
            project_root=str(item.config.rootpath),
            output=launch.output,
        )
        fds_box.append(supervisor)
        launch.supervisor = supervisor
        state = supervisor.run(end_at_done=context.pipeline and launch.output is None)
        oom_killed = bool(spec.mem_limit) and context.tree.oom_kills() > oom_kills_before
        result = self._result(item, spec, state, launch.crash_log, oom_killed)
        watch.finish(result, state)
        if not state.lingering:
            return result, None
        gone = partial(self.target_gone, item, spec)
        return result, EndingLaunch(launch, supervisor, watch, context.kill_grace, gone)

    def _child(
        self,
        item: pytest.Item,
        spec: IsolateSpec,
        prepared: Any,
        channel: socket.socket,
        crash_log: int,
        scratch: Path,
        context: BrokerContext,
        broker_pid: int,
        keep: list[int],
        terminal: list[int],
        ring: ShmRing | None = None,
        output: OutputRelay | None = None,
    ) -> None:
        """Common steps in their fixed order, then the backend's, then the test.

        ``keep`` (the channel, crash log, ring and pytest's capture) was listed
        in the broker: anything the child computes costs copy-on-write faults.
        The child detaches at once and waits for its start: it may have been
        forked while another test ran (``_prepare_next``).
        """

        plan = TargetPlan(
            parent_pid=broker_pid,
            channel=channel,
            crash_log=crash_log,
            scratch=str(scratch),
            keep_fds=[*keep, *self.restriction_fds()],
            terminal_fds=terminal,
            adopted=context.tree.membership() is not None,
            broker_namespaces=broker_namespaces(),
            output=None if output is None else output.write_fd,
        )
        setup = ChildSetup(item, spec, prepared, channel, scratch, keep)
        sender = FrameSender(channel if ring is None else ring.writer())
        detach_target(plan)

        def backend_steps() -> Privileges:
            self.restrict(setup)
            return self.privileges(setup)

        # Every step but the tree's before the start: the broker may have forked this
        # target while another test runs, and moves it into the tree as it starts it.
        failed: BaseException | None = None
        try:
            receipt = confine_target(plan, backend_steps)
            item.user_properties.append((RECEIPT_PROPERTY, " ".join(receipt)))
        except BaseException as exc:  # reported once started, as the test's setup error
            failed = exc
        _wait_for_start(channel)

        def restrict() -> None:
            if failed is not None:
                raise failed

        # The broker forked this child inside some test's warnings context (maybe
        # another test's): back to the filters between tests. ``run_item`` puts this
        # test's own on top, as the broker's pytest would around its protocol; what
        # the target's own steps warn before that is not the test's, and is dropped.
        if context.warning_filters is not None:
            warnings.resetwarnings()
            cast("list[Any]", warnings.filters)[:] = context.warning_filters
        with warnings.catch_warnings(record=True):
            run_in_target(item, sender, restrict, send_tmp_path=not self.shares_tmp_path)

    def _result(
        self,
        item: pytest.Item,
        spec: IsolateSpec,
        state: Supervision,
        crash_log: int,
        oom_killed: bool = False,
    ) -> TargetResult:
        result = result_of(
            state.record,
            spec,
            # lingering: it said done and only exits; a bad exit is told when it is settled
            wait_status=0 if state.lingering else state.wait_status,
            timed_out=state.timed_out,
            protocol_error=state.protocol_error,
            oom_killed=oom_killed,
            duration=state.ended - state.started,
        )
        if result.failure is not None:
            result.sections.extend(output_tail(item.config))
            log = _read_crash_log(crash_log)
            if log.strip():
                result.sections.append(("Traceback of the target (faulthandler)", log))
        return result


@dataclass
class ForkedLaunch:
    """One forked target and the broker's ends of it, from its fork until it is reaped.

    The target detaches and waits for :meth:`start`. That wait is what lets
    the backend fork the next test's target while the current test runs
    (``BrokerContext.keep_spare``): the fork and its page-table copy leave
    the critical path, and the target still joins the process tree, with the
    limits of its own test, only once started.
    """

    item: pytest.Item
    spec: IsolateSpec
    prepared: Any
    pid: int
    channel: socket.socket
    crash_log: int
    scratch: Path
    ring: ShmRing | None
    output: OutputRelay | None
    broker_pid: int

    def start(self, tree: ProcessTree) -> bool:
        """Move it into ``tree`` (step 4 of its restriction) and let it run its test.

        False when it is gone. It took every other step while it waited.
        """
        try:
            if not tree.adopt(self.pid):
                return False
            self.channel.sendall(START)
        except OSError:
            return False
        return True

    #: its exit status was collected: the pid may belong to another process now
    reaped: bool = False
    #: once made, the supervisor reaps it (``TargetSupervisor.run`` and ``settle``)
    supervisor: TargetSupervisor | None = None

    def waiting(self) -> bool:
        """Still alive, and waiting (nothing but ``start`` makes it go on)."""
        try:
            if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                return True
        except ChildProcessError:
            pass
        self.reaped = True
        return False

    def end_unsupervised(self, tree: ProcessTree) -> None:
        """Kill and reap it if no supervisor did: an exception (Ctrl-C's among them) came
        between its fork and its supervision. Left alive, it would run on unwatched, and a
        namespace holder's end would wait for its reaping for ever."""
        if self.reaped or self.pid <= 0 or os.getpid() != self.broker_pid:
            return
        if self.supervisor is not None and self.supervisor.state.wait_status is not None:
            return
        with contextlib.suppress(OSError):
            tree.kill(self.pid)
        self.discard_process()

    def discard_process(self) -> None:
        """SIGKILL and reap it (not yet reaped: the pid is still its own)."""
        if not self.reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.reaped = True

    def discard(self) -> None:
        """End it unused, and free what the broker holds of it."""
        if os.getpid() != self.broker_pid:
            return  # a copy inherited by a target: this launch is its broker's
        self.discard_process()
        self.close()

    def close(self) -> None:
        if self.crash_log < 0:
            return
        os.close(self.crash_log)
        self.crash_log = -1
        self.channel.close()
        if self.output is not None:
            self.output.close()
        if self.ring is not None:
            self.ring.close()
        _remove_tree(self.scratch)


@dataclass
class EndingLaunch:
    """A target whose test is reported already: its exit is collected later (``settle``)."""

    launch: ForkedLaunch
    supervisor: TargetSupervisor
    watch: TargetWatch
    grace: float
    #: the backend's own step once the target is gone (``ForkedBackend.target_gone``)
    then: Callable[[], None]

    def settle(self) -> LateExit | None:
        try:
            why = self.supervisor.settle(self.grace)
            self.watch.settle()
        finally:
            self.launch.reaped = True
            self.launch.close()
            self.then()
        if why is None:
            return None
        return LateExit(self.launch.spec.label, self.launch.item.nodeid, why)


#: The broker's word to a waiting target: run your test.
START = b"S"


def _wait_for_start(channel: socket.socket) -> None:
    """In a launched target: block until the broker starts the test, or leave if it will not."""
    try:
        word = channel.recv(1)
    except OSError:
        word = b""
    if word != START:
        os._exit(0)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
