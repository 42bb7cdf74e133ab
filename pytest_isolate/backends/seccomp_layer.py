"""A seccomp policy applied inside a forked target, and the broker's watch over it.

Used by the ``seccomp`` backend and by any forked backend given ``seccomp=``.
Child side: install the precompiled programs last, hand the user-notification
listener to the broker over the channel (SCM_RIGHTS), close our copy, and
say which processes are the test. Broker side: service the listener in a
thread, then add the violations to the report and fail the test for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_isolate.backends.base import Availability, TargetResult
from pytest_isolate.backends.target_watch import TargetWatch
from pytest_isolate.liveness import descendants
from pytest_isolate.policy.kmsg import first_kmsg_position
from pytest_isolate.policy.listener_handover import SANDBOXED_FRAME, install_in_child
from pytest_isolate.spec import IsolateSpec, SpecError
from pytest_isolate.supervision.supervisor import Supervision
from pytest_isolate.target.sequence import Privileges

__all__ = [
    "SANDBOXED_FRAME",
    "PreparedFilter",
    "SeccompWatch",
    "build_policy",
    "install_in_child",
    "policy_options",
    "sandboxed",
]


POLICY_KEYWORDS: Mapping[str, str] = {
    "policy": "seccomp preset: default (no network), strict (no network, no exec), permissive",
    "deny": "more syscalls or @groups to deny, e.g. ['@clock', 'chmod']",
    "allow": "allow-list mode: only these syscalls and @groups (the baseline still applies)",
    "on_violation": "errno (deny with EPERM, default) or kill (kill the test)",
    "fail_on_violation": "fail the test when it attempted a denied syscall (default True)",
}


def sandbox_availability(base: Availability) -> Availability:
    """Forked sandboxes need fork (``base``), seccomp with notification, and namespaces."""
    if not base:
        return base
    from pytest_isolate.jail import jail_available
    from pytest_isolate.policy import seccomp_available

    ok, reason = seccomp_available()
    if not ok:
        return Availability(False, reason, "pip install 'pytest-isolate-sandbox[seccomp]'")
    ns_ok, ns_reason = jail_available()
    if not ns_ok:
        return Availability(
            False,
            f"no namespaces: {ns_reason}",
            "run as root, or enable unprivileged user namespaces "
            "(sudo sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000)",
        )
    return Availability(True, f"{reason}; {ns_reason}")


def seccomp_options(value: Hashable) -> dict[str, Any]:
    """The frozen form of a ``seccomp=`` option: a preset name or a dict of policy keywords."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"policy": value}
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return {str(k): v for k, v in value}
    raise SpecError(f"seccomp={value!r} must be a preset name or a dict of policy options")


def policy_options(spec: IsolateSpec, from_backend_keywords: bool) -> dict[str, Any] | None:
    """The policy keywords of a spec, or None when no policy applies."""
    options = seccomp_options(spec.seccomp)
    if from_backend_keywords:
        for key in POLICY_KEYWORDS:
            value = spec.option(key)
            if value is not None:
                options[key] = value
        if spec.network and "policy" not in options:
            options["policy"] = "permissive"
    elif not options:
        return None
    return options


def build_policy(options: Mapping[str, Any], where: str) -> Any:
    from pytest_isolate.policy import PolicyError, PolicySpec

    unknown = sorted(set(options) - set(POLICY_KEYWORDS))
    if unknown:
        raise SpecError(
            f"{where}: unknown seccomp option {', '.join(unknown)}; "
            f"valid: {', '.join(POLICY_KEYWORDS)}"
        )
    fail = options.get("fail_on_violation", True)
    if not isinstance(fail, bool):
        raise SpecError(f"{where}: fail_on_violation={fail!r} must be True or False")
    try:
        return PolicySpec.from_options(
            policy=options.get("policy"),
            deny=options.get("deny"),
            allow=options.get("allow"),
            on_violation=options.get("on_violation"),
        )
    except PolicyError as exc:
        raise SpecError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class PreparedFilter:
    """A seccomp policy compiled once per spec in the broker, and what a violation does."""

    compiled: Any  # policy.compiler.CompiledPolicy: loadable in the child, its spec for the monitor
    fail_on_violation: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str) -> PreparedFilter:
        from pytest_isolate.policy import compile_policy

        policy = build_policy(options, where)
        return cls(compile_policy(policy), bool(options.get("fail_on_violation", True)))

    def watch(self, pid: int, take_fds: Callable[[], list[int]]) -> SeccompWatch:
        """The broker's side of this filter in one target: its listener, then its verdict."""
        return SeccompWatch(self.compiled.spec, pid, self.fail_on_violation, take_fds)


def sandboxed(
    spec: IsolateSpec,
    user: tuple[int, int],
    prepared: PreparedFilter,
    own_namespaces: tuple[str, ...] = ("pid",),
) -> Privileges:
    """What a sandboxed forked target keeps: limits, a scrubbed environment, ``user``, the filter.

    ``target.sequence`` applies them in its order: the drop before
    ``no_new_privs`` (setuid must still work), the filter last.
    """
    return Privileges(
        mem_limit=spec.mem_limit,
        cpu_limit=spec.cpu_limit,
        env=dict(spec.env),
        scrub_environment=True,
        drop_to=user,
        non_dumpable=True,
        no_new_privs=True,
        seccomp=prepared.compiled,
        own_namespaces=own_namespaces,
    )


class SeccompWatch(TargetWatch):
    """Starts the violation monitor when the target says it is sandboxed; reports at the end."""

    def __init__(
        self,
        policy: Any,
        pid: int,
        fail_on_violation: bool,
        take_fds: Any,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.pid = pid
        self.fail_on_violation = fail_on_violation
        self.take_fds = take_fds
        self.monitor: Any = None
        self.test_pids: set[int] = {pid}
        self.kmsg_since = first_kmsg_position()
        self.handlers[SANDBOXED_FRAME] = self._on_sandboxed

    def _on_sandboxed(self, message: dict[str, Any]) -> None:
        from pytest_isolate.policy import ViolationMonitor
        from pytest_isolate.wire.frames import ProtocolViolation

        if self.monitor is not None:
            raise ProtocolViolation("said 'sandboxed' twice")
        # The test process may sit in a PID namespace below the target: learn its host pids.
        self.test_pids.update(descendants(self.pid))
        fds = self.take_fds()
        if message.get("listener") is True:
            if len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                raise ProtocolViolation("announced a seccomp listener but passed none")
            self.monitor = ViolationMonitor(fds[0], self.policy, target_pid=self.pid)
            self.monitor.start()
        else:
            self.monitor = False
            for fd in fds:
                os.close(fd)

    def finish(self, result: TargetResult, state: Supervision) -> None:
        from pytest_isolate.policy import find_kernel_kill

        if not self.monitor:
            violations = []
        elif state.lingering:
            # The test's calls were answered (so recorded) before it said done; the
            # monitor serves the exit's calls until ``settle``.
            violations = self.monitor.violations()
        else:
            violations = self.monitor.stop()
        killed_by_kernel = None
        if killed_by_sigsys(state.wait_status):
            killed_by_kernel = find_kernel_kill(self.test_pids, self.kmsg_since) or "unknown"
        report_violations(result, self.policy, violations, killed_by_kernel, self.fail_on_violation)

    def settle(self) -> None:
        if self.monitor:
            self.monitor.stop()


def killed_by_sigsys(status: int | None) -> bool:
    """Did the target die of SIGSYS, the signal of a seccomp ``KILL_PROCESS``?"""
    return status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == 31


#: The last line of a violation's report: how to allow the call, or only report it.
LOOSEN_HINT = (
    "to allow it: policy='permissive' (the baseline only) or allow=[...] naming what the test "
    "may call; to report it without failing: fail_on_violation=False "
    "(keywords of the seccomp backend; seccomp={...} on the others)"
)
BASELINE_HINT = (
    "the baseline cannot be loosened: it denies what a sandboxed test never needs (mount, "
    "kernel modules, bpf, ptrace, new namespaces); run such a test with --no-isolate"
)


def report_violations(
    result: TargetResult,
    policy: Any,
    violations: list[Any],
    killed_by_kernel: str | None,
    fail_on_violation: bool,
) -> None:
    """Add what the policy denied to ``result`` and fail the test for it.

    ``killed_by_kernel`` names the call a baseline kill was for ("unknown"
    when the kernel log does not say). The same words whether a forked
    target's broker or a container's or VM's agent serviced the listener.
    """
    lines = [f"forbidden syscall: {v.describe()}" for v in violations]
    if killed_by_kernel is not None:
        lines.append(
            f"forbidden syscall: {killed_by_kernel} [baseline] (killed by the kernel filter)"
        )
    if not lines:
        return
    preset = getattr(policy, "preset", "default")
    text = (
        "\n".join(lines)
        + f"\n(policy {preset!r})\n"
        + (BASELINE_HINT if killed_by_kernel is not None else LOOSEN_HINT)
    )
    result.sections.append(("seccomp violations", text))
    if killed_by_kernel is not None:
        call = (
            "a forbidden syscall (the kernel log that names it is out of reach)"
            if killed_by_kernel == "unknown"
            else f"forbidden syscall {killed_by_kernel}"
        )
        result.failure = f"killed for {call} under the always-on baseline (policy {preset!r})"
        result.failure_kind = "violation"
    elif fail_on_violation and result.failure is None:
        first = violations[0].describe()
        more = f" and {len(violations) - 1} more" if len(violations) > 1 else ""
        result.failure = f"forbidden syscall {first}{more} under policy {preset!r}"
        result.failure_kind = "violation"
