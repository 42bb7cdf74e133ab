"""One test in a fresh fork of the agent: the child's restriction steps, and the relay.

The agent has imported pytest and collected once; each test gets a fork of
that state, so it starts in about a millisecond and cannot touch the next
test. The child applies the restriction steps in the fixed order below, then
runs the item's whole protocol (``run_item``), writing frames to a private
socket. The agent relays those frames to the broker through its own
``FrameDecoder`` (a child cannot desynchronise the broker's stream, nor send
anything but test frames), watches for the broker's ``kill``, and when the
child is gone sweeps every leftover process before it says ``exited``.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from typing import Any, List, Tuple

import pytest

from pytest_isolate.agent.channel import AgentChannel, BrokerGone
from pytest_isolate.agent.exit_watch import ExitWatch, wait_status
from pytest_isolate.agent.live_output import LiveOutput
from pytest_isolate.agent.seccomp_watch import SANDBOXED_FRAME, AgentSeccompWatch, loadable_policy
from pytest_isolate.agent.sweep import kill_leftovers
from pytest_isolate.policy.compiler import LoadablePolicy
from pytest_isolate.target import steps
from pytest_isolate.target.capture import capture_fds, output_tail, saved_terminal_fds
from pytest_isolate.target.coverage_probe import TargetCoverage
from pytest_isolate.target.hypothesis_examples import read_before_fork
from pytest_isolate.target.item_runner import FrameSender, run_in_target
from pytest_isolate.target.receipt import RECEIPT_PROPERTY
from pytest_isolate.target.sequence import Privileges, TargetPlan, restrict_target
from pytest_isolate.wire.agent_protocol import (
    Exited,
    ProtocolViolation,
    RunRequest,
    parse_broker_message,
)
from pytest_isolate.wire.frames import FrameDecoder, FrameLimits
from pytest_isolate.wire.test_frames import SETUP_ERROR_FRAME, TEST_FRAME_TYPES

CRASH_LOG_TAIL = 16 * 1024
DRAIN_AFTER_EXIT = 0.5


class ChildOutcome:
    """What the agent saw of one child."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.violation: str | None = None
        self.killed = False
        #: every leftover was killed once the child exited (no second sweep needed)
        self.swept = False


@dataclass(frozen=True)
class ForkPlan:
    """What every child needs that the agent can work out once, before its first fork.

    In a TCG guest each step costs about ten times what it costs on the host,
    so nothing that is the same for every test is redone in every child.
    """

    #: the agent's pid; 1 when it is the init of a VM or container
    agent_pid: int
    #: /dev/null, opened once, for the child's stdin
    devnull: int
    #: pytest's own capture descriptors, which the child keeps
    capture_fds: Tuple[int, ...]
    #: pytest's saved copies of the agent's real stdio (its channel or the
    #: engine's log): blanked in each child
    terminal_fds: Tuple[int, ...]
    #: the uid/gid a root agent's children drop to; None for an unprivileged agent
    drop_to: Tuple[int, int] | None
    #: what the broker's coverage measures, when it runs: each child measures its test
    coverage: Tuple[Tuple[str, Any], ...] | None = None
    #: the run does not capture at the descriptor level (``-s``): the child's stdout
    #: and stderr are relayed to the broker as they come (``agent.live_output``)
    live_output: bool = False


def plan_forks(config: pytest.Config) -> ForkPlan:
    """Work out the ``ForkPlan`` and do, in the agent, the steps no child needs to repeat.

    The capability bounding set is emptied here: it only limits what an
    ``execve`` can gain, the agent never executes anything, and the agent's
    own effective capabilities (kill, chown, setuid for its children) stay.
    The environment is scrubbed here too: every child starts from it, and
    adds its test's ``env=`` on top.
    """
    root = os.geteuid() == 0
    if root:
        steps.drop_capability_bounding_set()
    steps.scrub_environment()
    settle_name_service()
    return ForkPlan(
        agent_pid=os.getpid(),
        devnull=os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC),
        capture_fds=tuple(capture_fds(config)),
        terminal_fds=tuple(saved_terminal_fds(config)),
        drop_to=steps.unprivileged_ids() if root else None,
        live_output=config.getoption("capture", "fd") != "fd",
    )


def settle_name_service() -> None:
    """Make the C library's first user and group lookups here, not in every child.

    glibc first asks nscd over an AF_UNIX ``socket()`` and remembers for the
    next hundred lookups that it is absent. A child that made the first
    lookup itself (``tmp_path`` asks for the user name) would trip the
    ``socket`` denial of a ``seccomp=`` policy; a broker's forked targets
    inherit a settled state the same way.
    """
    import grp
    import pwd

    with contextlib.suppress(KeyError, OSError):
        pwd.getpwuid(os.getuid())
    with contextlib.suppress(KeyError, OSError):
        grp.getgrgid(os.getgid())


def run_in_fork(
    item: pytest.Item,
    request: RunRequest,
    channel: AgentChannel,
    limits: FrameLimits,
    plan: ForkPlan,
) -> None:
    """Run ``item`` in a fresh child, relay its frames, sweep, and send ``exited``."""
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    crash_log = os.memfd_create("pytest-isolate-crash-log", os.MFD_CLOEXEC)
    scratch = tempfile.mkdtemp(prefix="pytest-isolate-test-")
    if plan.drop_to is not None:
        os.chown(scratch, *plan.drop_to)
    policy = None if request.seccomp is None else loadable_policy(request.seccomp)
    # Before the fork: the watch notes where the kernel log stands.
    watch = None if request.seccomp is None else AgentSeccompWatch(request.seccomp)
    read_before_fork(item)  # hypothesis's examples, with the agent's own view
    live = LiveOutput() if plan.live_output else None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        parent_end.close()
        output = None if live is None else live.write_fd
        _child(item, request, child_end, crash_log, scratch, plan, policy, output)
    child_end.close()
    if live is not None:
        live.after_fork()
    outcome = ChildOutcome()
    if watch is not None:
        watch.pid = pid
    seccomp = None
    try:
        _relay(pid, parent_end, channel, FrameDecoder(limits), outcome, watch, live)
    finally:
        if live is not None:
            live.close()
        if not outcome.swept:  # the relay ended early: the broker left, or the child lingers
            kill_leftovers()
        parent_end.close()
        sections = _sections(item.config, crash_log, outcome)
        os.close(crash_log)
        _remove_scratch(scratch)
        if watch is not None:
            seccomp = watch.outcome(outcome.status)
    channel.send(
        Exited(
            status=outcome.status if outcome.status is not None else 0x9,
            violation=outcome.violation,
            sections=tuple(sections),
            seccomp=seccomp,
        ).to_message()
    )


def _remove_scratch(path: str) -> None:
    """Remove a test's scratch dir; usually empty, so one ``rmdir`` does it."""
    try:
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


# -- the child -------------------------------------------------------------
def _child(
    item: pytest.Item,
    request: RunRequest,
    channel: socket.socket,
    crash_log: int,
    scratch: str,
    plan: ForkPlan,
    policy: LoadablePolicy | None,
    output: int | None = None,
) -> None:
    """The restriction steps in their fixed order, then the test. Never returns.

    ``output``: the pipe its stdout and stderr go to under ``-s``.
    """

    target = TargetPlan(
        # As init, the agent cannot die without its children: the kernel
        # kills a PID namespace with its init, and a VM ends with it.
        parent_pid=None if plan.agent_pid == 1 else plan.agent_pid,
        channel=channel,
        crash_log=crash_log,
        scratch=scratch,
        keep_fds=[0, 1, 2, channel.fileno(), crash_log, *plan.capture_fds],
        terminal_fds=plan.terminal_fds,
        default_signals=(signal.SIGINT, signal.SIGTERM, signal.SIGPIPE),
        stdin=plan.devnull,
        output=output,
        traceback_on_sigterm=False,
    )
    # The agent scrubbed the environment and emptied the bounding set for every child.
    privileges = Privileges(
        mem_limit=request.mem_limit,
        cpu_limit=request.cpu_limit,
        env=dict(request.env),
        drop_to=plan.drop_to,
        bounding_set_dropped=True,
        no_new_privs=True,
        seccomp=policy,
        no_capabilities=True,  # a non-root agent holds none (a hardened container)
    )

    def restrict() -> None:
        receipt = restrict_target(target, lambda: privileges)
        item.user_properties.append((RECEIPT_PROPERTY, " ".join(receipt)))

    settings = plan.coverage
    measure = (lambda: None) if settings is None else (lambda: TargetCoverage.start(dict(settings)))
    run_in_target(item, FrameSender(channel), restrict, measure, send_tmp_path=True)


# -- the agent's side ------------------------------------------------------
#: Seconds between ``alive`` frames while a test runs (see ``AgentClient.silence_limit``).
ALIVE_INTERVAL = 1.0


def _relay(
    pid: int,
    child: socket.socket,
    channel: AgentChannel,
    decoder: FrameDecoder,
    outcome: ChildOutcome,
    watch: AgentSeccompWatch | None = None,
    live: LiveOutput | None = None,
) -> None:
    """Pass the child's frames on until it exited and its socket closed.

    Under ``seccomp=`` the same loop services the child's listener (``watch``);
    under ``-s`` it sends the child's output as it comes (``live``).
    """
    exit_watch = ExitWatch(pid)
    poller = select.poll()
    poller.register(child.fileno(), select.POLLIN)
    poller.register(exit_watch.fd, select.POLLIN)
    poller.register(channel.in_fd, select.POLLIN)
    if live is not None:
        poller.register(live.read_fd, select.POLLIN)
    child_open, exited, drain_until = True, False, None
    listening = False
    last_alive = time.monotonic()
    try:
        while child_open:
            if channel.has_buffered:
                _broker_messages(channel, pid, outcome, buffered_only=True)
            wait_ms = int(ALIVE_INTERVAL * 1000)
            if drain_until is not None:
                wait_ms = max(0, int((drain_until - time.monotonic()) * 1000))
                if wait_ms == 0:
                    break
            if time.monotonic() - last_alive >= ALIVE_INTERVAL:
                # A quiet test must not look like a hung target (a guest kernel that
                # stopped, a frozen container): say we are alive once a second.
                channel.send({"type": "alive"})
                last_alive = time.monotonic()
            for fd, event in poller.poll(wait_ms):
                if fd == exit_watch.fd and not exited:
                    status = exit_watch.reap()
                    if status is None:  # another child's SIGCHLD (no pidfd here)
                        continue
                    exited = True
                    poller.unregister(exit_watch.fd)
                    outcome.status = status
                    kill_leftovers()  # whoever still holds the socket dies now
                    outcome.swept = True
                    drain_until = time.monotonic() + DRAIN_AFTER_EXIT
                elif fd == channel.in_fd:
                    _broker_messages(channel, pid, outcome, buffered_only=False)
                elif live is not None and fd == live.read_fd:
                    if not live.pump(channel.send):
                        poller.unregister(fd)
                elif fd == child.fileno():
                    child_open = _pass_on(child, channel, decoder, pid, outcome, watch)
                    if not child_open:
                        poller.unregister(child.fileno())
                    elif watch is not None and watch.listener_fd is not None and not listening:
                        listening = True
                        poller.register(watch.listener_fd, select.POLLIN)
                elif watch is not None and fd == watch.listener_fd:
                    if event & select.POLLIN:
                        watch.service()
                    else:  # every task under the filter is gone
                        poller.unregister(fd)
        if not exited:
            outcome.status = wait_status(pid)
        if live is not None:
            live.drain(channel.send)
    finally:
        exit_watch.close()


def _pass_on(
    child: socket.socket,
    channel: AgentChannel,
    decoder: FrameDecoder,
    pid: int,
    outcome: ChildOutcome,
    watch: AgentSeccompWatch | None = None,
) -> bool:
    fds: List[int] = []
    if watch is not None and not watch.sandboxed:  # the listener comes with 'sandboxed'
        data, fds, _flags, _address = socket.recv_fds(child, 256 * 1024, 1)
    else:  # fds sent to a plain recv are discarded by the kernel
        data = child.recv(256 * 1024)
    try:
        if not data:
            return False
        if outcome.violation is not None:
            return True  # already killed; discard the rest
        try:
            for message in decoder.feed(data):
                if message["type"] == SANDBOXED_FRAME and watch is not None:
                    watch.on_sandboxed(message, fds)
                    continue
                if message["type"] not in TEST_FRAME_TYPES:
                    raise ProtocolViolation(f"sent a frame of type {message['type'][:40]!r}")
                if (
                    watch is not None
                    and not watch.sandboxed
                    and message["type"] != SETUP_ERROR_FRAME
                ):
                    raise ProtocolViolation("sent test frames before its filter was loaded")
                channel.send(message)
        except ProtocolViolation as exc:
            outcome.violation = str(exc)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return True
    finally:
        for fd in fds:  # whatever was not taken as the listener
            os.close(fd)


def _broker_messages(
    channel: AgentChannel, pid: int, outcome: ChildOutcome, buffered_only: bool
) -> None:
    """During a test the broker may only say ``kill``; EOF means it is gone."""
    try:
        if buffered_only:
            message = channel.pending_message()
            messages = [message] if message is not None else []
        else:
            messages = channel.receive_ready()
    except BrokerGone:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        kill_leftovers()
        raise
    for message in messages:
        request = parse_broker_message(message)
        if request != "kill":
            raise ProtocolViolation(f"broker sent {message['type']!r:.40} during a test")
        outcome.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _sections(
    config: pytest.Config, crash_log: int, outcome: ChildOutcome
) -> List[Tuple[str, str]]:
    """After an abnormal end: the captured output tail and faulthandler's log."""
    status = outcome.status or 0
    normal = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and outcome.violation is None
    if normal:
        return []
    sections = [(title, text[-60000:]) for title, text in output_tail(config)][:4]
    size = os.fstat(crash_log).st_size
    start = max(0, size - CRASH_LOG_TAIL)
    log = os.pread(crash_log, size - start, start).decode("utf-8", "replace") if size else ""
    if log.strip():
        sections.append(("Traceback of the target (faulthandler)", log))
    return sections
