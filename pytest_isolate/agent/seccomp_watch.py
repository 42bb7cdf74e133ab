"""``seccomp=`` inside a container or VM: the agent services its child's listener.

The broker compiled the policy and sent finished BPF (``SeccompRequest``);
the child loads it as its last restriction step and hands the listener to
the agent over its private socket (``policy.listener_handover``). The agent answers
each denied call with EPERM (or kills the test) from its own poll loop, and
reports raw numbers in ``exited``: the broker names them. Threads are
avoided on purpose: the agent forks for every test, and a fork taken while
another thread holds a lock inherits that lock held forever.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Dict, List, Tuple

from pytest_isolate.policy.compiler import LoadablePolicy
from pytest_isolate.policy.kmsg import find_kernel_kill_record, first_kmsg_position
from pytest_isolate.policy.listener_handover import SANDBOXED_FRAME
from pytest_isolate.policy.notify import NotificationServicer
from pytest_isolate.wire.agent_protocol import ProtocolViolation, SeccompOutcome, SeccompRequest

__all__ = ["SANDBOXED_FRAME", "AgentSeccompWatch", "loadable_policy"]


@functools.lru_cache(maxsize=16)
def _loadable(baseline: bytes, notify: bytes | None, seccomp_nr: int) -> LoadablePolicy:
    return LoadablePolicy(baseline, notify, seccomp_nr)


def loadable_policy(request: SeccompRequest) -> LoadablePolicy:
    """The programs in C memory, built in the agent before the fork (once per policy)."""
    return _loadable(request.baseline, request.notify, request.seccomp_nr)


class AgentSeccompWatch:
    """One test's listener, serviced in the agent's relay loop; the outcome for ``exited``."""

    def __init__(self, request: SeccompRequest) -> None:
        self.request = request
        #: the child's pid, set once it is forked
        self.pid = 0
        self.kmsg_since = first_kmsg_position()
        self.sandboxed = False
        self.servicer: NotificationServicer | None = None

    def on_sandboxed(self, message: Dict[str, Any], fds: List[int]) -> None:
        """The child's 'filters loaded' frame; takes the listener out of ``fds``."""
        if self.sandboxed:
            raise ProtocolViolation("said 'sandboxed' twice")
        self.sandboxed = True
        wants_listener = self.request.notify is not None
        if message.get("listener") is not wants_listener:
            raise ProtocolViolation("'sandboxed' does not match the policy's listener")
        if not wants_listener:
            return
        if not fds:
            raise ProtocolViolation("announced a seccomp listener but passed none")
        listener = fds.pop(0)
        self.servicer = NotificationServicer(
            listener,
            kill=self.request.kill,
            target_pid=self.pid,
            seccomp_nr=self.request.seccomp_nr,
        )

    @property
    def listener_fd(self) -> int | None:
        return None if self.servicer is None else self.servicer.fileno()

    def service(self) -> None:
        """The listener is readable: answer one denied call."""
        if self.servicer is not None:
            self.servicer.handle_one()

    def outcome(self, status: int | None) -> SeccompOutcome:
        """Close the listener (answering what is pending) and say what was denied."""
        denials: Tuple[Tuple[int, int, Tuple[int, ...], int, bool], ...] = ()
        error = None
        if self.servicer is not None:
            self.servicer.close()
            denials = tuple(
                (r.arch, r.nr, r.args, r.count, r.killed) for r in self.servicer.records()
            )
            error = None if self.servicer.error is None else str(self.servicer.error)
        kernel_kill = None
        if status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == 31:
            record = find_kernel_kill_record({self.pid}, self.kmsg_since)
            if record is not None:
                kernel_kill = (record.arch, record.syscall)
        return SeccompOutcome(denials=denials, kernel_kill=kernel_kill, error=error)

    def close(self) -> None:
        """Without an outcome (the broker went away): just close the listener."""
        if self.servicer is not None:
            with contextlib.suppress(OSError):
                self.servicer.close()
