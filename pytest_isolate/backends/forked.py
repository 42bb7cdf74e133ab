"""Targets made by forking the broker after collection: the shared machinery.

The child already holds the collected item, so it applies its restrictions
and runs the protocol with no import or collection cost: the price floor is
one fork. Subclasses (process, seccomp, chroot) only say which restriction
steps their child applies (``restrict``) and what the broker does around it
(``prepare``, ``watch``); the order of the common steps lives here, once.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from pytest_isolate.backends.base import Availability, TargetResult
from pytest_isolate.pytest_compat import ensure_basetemp
from pytest_isolate.spec import IsolateSpec
from pytest_isolate.supervision.context import BrokerContext
from pytest_isolate.supervision.outcome import result_of
from pytest_isolate.supervision.output_relay import OutputRelay, captures_fds
from pytest_isolate.supervision.supervisor import Supervision, TargetSupervisor
from pytest_isolate.target.capture import capture_fds, output_tail, saved_terminal_fds
from pytest_isolate.target.hypothesis_examples import read_before_fork
from pytest_isolate.target.item_runner import FrameSender, prepare_forwarder, run_in_target
from pytest_isolate.target.receipt import RECEIPT_PROPERTY, namespace_inodes
from pytest_isolate.target.sequence import Privileges, TargetPlan, restrict_target
from pytest_isolate.wire.shm import ShmRing
from pytest_isolate.wire.test_frames import Handler

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


@dataclass
class TargetWatch:
    """Broker-side companion of one target: extra frame handlers and a final say."""

    handlers: dict[str, Handler] = field(default_factory=dict)

    def finish(self, result: TargetResult, state: Supervision) -> None:
        """Add sections or a failure to the result once the target has ended."""


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

    def fork_target(self, item: pytest.Item, spec: IsolateSpec, prepared: Any) -> int:
        """The fork that makes the target; a backend may fork it into a namespace."""
        return os.fork()

    # -- the fixed sequence ---------------------------------------------
    @lru_cache(maxsize=64)  # noqa: B019 - one cache per backend instance is the point
    def _prepared_for(self, spec: IsolateSpec) -> Any:
        return self.prepare(spec)

    def run(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> TargetResult:
        prepared = self._prepared_for(spec)
        scratch = context.new_scratch("target")
        self.prepare_scratch(scratch, spec)
        broker_end, target_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # shm: frames go through a shared ring; the socket stays for handshakes and EOF.
        ring = ShmRing() if spec.channel == "shm" else None
        crash_log = os.memfd_create("pytest-isolate-crash-log", os.MFD_CLOEXEC)
        broker_pid = os.getpid()
        context.tree.before_fork(spec.pids_limit or self.default_pids_limit, spec.mem_limit)
        oom_kills_before = context.tree.oom_kills() if spec.mem_limit else 0
        keep = [0, 1, 2, target_end.fileno(), crash_log, *capture_fds(item.config)]
        terminal = saved_terminal_fds(item.config)
        if ring is not None:
            keep += ring.child_fds()
        prepare_forwarder(item.config)
        read_before_fork(item)  # hypothesis's examples: the target may not see the project
        broker_namespaces()  # read here, in the broker: the child's plan uses this cached value
        # Without fd capture (-s) the target's stdout and stderr come through the broker.
        output = None if captures_fds(item.config.getoption("capture", "fd")) else OutputRelay()
        if TMP_PATH_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            ensure_basetemp(item.config)
        # Objects the broker already has are moved out of the collector's reach
        # for the fork: a collection in the child would otherwise touch every
        # page of the broker's heap and copy it (copy-on-write), per test.
        gc.freeze()
        pid = self.fork_target(item, spec, prepared)
        if pid:
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
        target_end.close()
        if output is not None:
            output.after_fork()
        try:
            fds_box: list[TargetSupervisor] = []
            watch = self.watch(spec, prepared, pid, lambda: fds_box[0].take_fds())
            supervisor = TargetSupervisor(
                pid,
                broker_end,
                item.nodeid,
                spec.timeout,
                context.limits,
                kill_tree=lambda: context.tree.kill(pid),
                kill_grace=context.kill_grace,
                extra_handlers=watch.handlers,
                ring=ring.reader() if ring is not None else None,
                project_root=str(item.config.rootpath),
                output=output,
            )
            fds_box.append(supervisor)
            state = supervisor.run()
            oom_killed = bool(spec.mem_limit) and context.tree.oom_kills() > oom_kills_before
            result = self._result(item, spec, state, crash_log, oom_killed)
            watch.finish(result, state)
            return result
        finally:
            os.close(crash_log)
            broker_end.close()
            if output is not None:
                output.close()
            if ring is not None:
                ring.close()
            _remove_tree(scratch)

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
        """

        plan = TargetPlan(
            parent_pid=broker_pid,
            channel=channel,
            crash_log=crash_log,
            scratch=str(scratch),
            keep_fds=[*keep, *self.restriction_fds()],
            terminal_fds=terminal,
            join_tree=context.tree.join,
            tree_membership=context.tree.membership(),
            broker_namespaces=broker_namespaces(),
            output=None if output is None else output.write_fd,
        )
        setup = ChildSetup(item, spec, prepared, channel, scratch, keep)

        def backend_steps() -> Privileges:
            self.restrict(setup)
            return self.privileges(setup)

        def restrict() -> None:
            receipt = restrict_target(plan, backend_steps)
            item.user_properties.append((RECEIPT_PROPERTY, " ".join(receipt)))

        sender = FrameSender(channel if ring is None else ring.writer())
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
            wait_status=state.wait_status,
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


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
