"""The one order in which a freshly forked target is restricted, for every kind of target.

A forked target of the broker (process, seccomp, chroot) and each test's
child of an agent inside a container, a guest or a foreign-root jail go
through :func:`restrict_target`: what differs between them is data (a
:class:`TargetPlan` the caller fills in, a :class:`Privileges` the backend
returns from its own steps), never the order. A step out of order weakens
the ones after it (a filter loaded before the privilege drop forbids the
drop; an environment scrubbed before the jail is entered leaks into it), so
the order is this function's body, top to bottom, and docs/internals.md
lists the same steps.

Runs in the child after ``fork()`` and before any of the test's code:
Python 3.9 syntax, nothing imported lazily after the privilege drop.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Tuple

from pytest_isolate.policy.listener_handover import install_in_child
from pytest_isolate.target import steps
from pytest_isolate.target.receipt import Promise, check_layers


@dataclass(frozen=True)
class Privileges:
    """What a target may keep: the last steps of the sequence, declared by its backend.

    ``scrub_environment`` empties the environment to the allow-list before
    ``env`` is added (a spawned target's agent scrubbed once for all its
    children, and the ``process`` backend is no security boundary: both only
    add). ``drop_to`` is the uid and gid to become (None: stay), and
    ``seccomp`` the compiled filter loaded last, its listener handed to the
    broker over the target's channel.
    """

    mem_limit: int | None = None
    cpu_limit: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    scrub_environment: bool = False
    drop_to: Tuple[int, int] | None = None
    bounding_set_dropped: bool = False  # the agent emptied it for every child already
    non_dumpable: bool = False
    no_new_privs: bool = False
    seccomp: Any = None
    #: Capabilities promised empty even without a drop here (a spawned target's
    #: agent holds none, or dropped them for its children); None: when ``drop_to``.
    no_capabilities: bool | None = None
    #: Namespaces of these kinds must be the target's own, not the broker's
    #: (``TargetPlan.broker_namespaces`` holds the broker's).
    own_namespaces: Tuple[str, ...] = ()

    def promise(self, broker_namespaces: Mapping[str, int]) -> Promise:
        """What the kernel must say of the target once these steps ran."""
        filters = len(self.seccomp.programs) if self.seccomp is not None else 0
        return Promise(
            uid=self.drop_to,
            no_new_privs=self.no_new_privs or self.seccomp is not None,
            seccomp_filters=filters,
            no_capabilities=(
                self.drop_to is not None if self.no_capabilities is None else self.no_capabilities
            ),
            # A drop here empties the bounding set too; an agent's child relies on its
            # agent for that, which a hardened container's root agent cannot do.
            empty_bounding_set=self.drop_to is not None and not self.bounding_set_dropped,
            other_namespaces=tuple(
                (kind, broker_namespaces[kind])
                for kind in self.own_namespaces
                if kind in broker_namespaces
            ),
        )


@dataclass(frozen=True)
class TargetPlan:
    """Where a target stands right after the fork: what it keeps, whom it belongs to."""

    #: The process whose death kills the target (None: it is PID 1 of the
    #: target's namespace, whose death the kernel turns into the target's).
    parent_pid: int | None
    channel: Any  # the socket to the broker (or the agent): kept, and the listener's way out
    crash_log: int
    scratch: str
    #: Descriptors the test keeps: the channel, the crash log, pytest's
    #: capture files, the shared ring; every other one is closed.
    keep_fds: Sequence[int]
    #: pytest's saved copies of the real terminal: pointed at /dev/null.
    terminal_fds: Sequence[int] = ()
    #: Signal handlers of the broker or agent that the test must not inherit.
    default_signals: Sequence[int] = (signal.SIGTERM,)
    #: A descriptor of /dev/null for stdin (the agent's stdin is its channel).
    stdin: int | None = None
    #: A pipe to the broker for stdout and stderr, when pytest does not capture
    #: them (``-s``): the test never writes to the user's terminal itself.
    output: int | None = None
    #: The broker moves the target into its process tree's cgroup (with the test's
    #: limits) and checks it there before it starts (step 4, ``ProcessTree.adopt``);
    #: the receipt names the layer.
    adopted: bool = False
    #: Also dump the traceback on SIGTERM: the broker's first way to end a hung test.
    traceback_on_sigterm: bool = True
    #: The broker's namespaces (kind -> inode), for the receipt's comparison.
    broker_namespaces: Mapping[str, int] = field(default_factory=dict)


def restrict_target(plan: TargetPlan, backend_steps: Callable[[], Privileges]) -> list[str]:
    """Restrict this freshly forked process, step by step; ``backend_steps`` is step 7.

    Returns the receipt: the layers the kernel says are in force. A layer the
    backend promised and the kernel does not show raises ``LayerMissing``,
    and the test never starts.
    """
    detach_target(plan)
    return confine_target(plan, backend_steps)


def detach_target(plan: TargetPlan) -> None:
    """Steps 2 and 3: tie the target's life to its parent's and leave the broker's session.

    A forked target prepared ahead of its test (``backends/forked.py``) stops
    after these steps and waits for its test; they make it safe to wait (a
    Ctrl-C at the terminal does not reach it, and it dies with the broker)
    without joining the tree whose limits belong to the test still running.
    """
    # 1. fork: done by the caller, which compiled any filter before it.
    # 2. The target dies with the process that supervises it.
    if plan.parent_pid is not None:
        steps.set_parent_death_signal(plan.parent_pid)
    # 3. A session of its own: no terminal, no job-control signals from the broker's.
    steps.new_session()
    for number in plan.default_signals:
        if signal.getsignal(number) is not signal.SIG_DFL:
            signal.signal(number, signal.SIG_DFL)


def confine_target(plan: TargetPlan, backend_steps: Callable[[], Privileges]) -> list[str]:
    """Steps 5 to 13, after :func:`detach_target`; returns the receipt (as ``restrict_target``).

    Step 4, the process tree, is the broker's: it moves a forked target into
    its cgroup as the test starts (``plan.adopted``), so that a target made
    while another test runs can take every step here before its own starts.
    A spawned target's child is in its agent's container or guest.
    """
    # 5. Nothing inherited but what the test needs; no way to the real terminal.
    if plan.stdin is not None:
        os.dup2(plan.stdin, 0)
    if plan.output is not None:
        os.dup2(plan.output, 1)
        os.dup2(plan.output, 2)
    steps.close_inherited_fds(plan.keep_fds)
    steps.blank_descriptors(plan.terminal_fds)
    # 6. A crash leaves a traceback; temporary files go to private scratch space.
    os.set_inheritable(plan.crash_log, False)
    faulthandler.enable(file=plan.crash_log, all_threads=True)
    if plan.traceback_on_sigterm:
        with contextlib.suppress(RuntimeError, ValueError):
            faulthandler.register(signal.SIGTERM, file=plan.crash_log, all_threads=True, chain=True)
    os.environ["TMPDIR"] = plan.scratch
    tempfile.tempdir = plan.scratch
    # 7. The backend's own steps: namespaces, a root of its own, its basetemp.
    privileges = backend_steps()
    # 8. Resource limits.
    steps.apply_rlimits(privileges.mem_limit, privileges.cpu_limit)
    # 9. The environment: the allow-list, then the test's env=.
    if privileges.scrub_environment:
        steps.scrub_environment(dict(privileges.env))
    else:
        os.environ.update(privileges.env)
    # 10. An unprivileged user, no capabilities (bounding and ambient sets too).
    if privileges.drop_to is not None:
        uid, gid = privileges.drop_to
        steps.drop_privileges(uid, gid, bounding_set_dropped=privileges.bounding_set_dropped)
    # 11. Not dumpable (no ptrace, no /proc peeking by others); no new privileges.
    if privileges.non_dumpable:
        steps.set_non_dumpable()
    if privileges.no_new_privs or privileges.seccomp is not None:
        steps.set_no_new_privs()
    # 12. The seccomp filter, last: it forbids what the steps above used.
    if privileges.seccomp is not None:
        install_in_child(privileges.seccomp, plan.channel)
    # 13. Fail closed: each promised layer is checked from the kernel's side.
    receipt = check_layers(privileges.promise(plan.broker_namespaces))
    if plan.adopted:  # checked by the broker from outside, before the start
        receipt.insert(1, "cgroup")
    return receipt
    # 14. The test runs: the caller's next step, with the receipt as a property.
