"""``seccomp=`` for spawned targets (container, vm): the broker's side.

The broker compiles the policy with its own libseccomp, as for a forked
target, and sends the finished programs with each ``run``; the agent in the
target loads them in the test's child and services the listener. What comes
back is numbers only: the broker names the calls, decides whether they fail
the test, and words the report exactly as for a forked target
(``seccomp_layer.report_violations``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_isolate.backends.base import TargetResult
from pytest_isolate.backends.seccomp_layer import (
    build_policy,
    killed_by_sigsys,
    policy_options,
    report_violations,
)
from pytest_isolate.spec import IsolateSpec, SpecError
from pytest_isolate.wire.agent_protocol import SeccompOutcome, SeccompRequest


@dataclass(frozen=True)
class SpawnedPolicy:
    """A compiled policy for one test in a spawned target, and what to do with its outcome."""

    compiled: Any  # policy.CompiledPolicy
    fail_on_violation: bool

    def request(self) -> SeccompRequest:
        return SeccompRequest(
            baseline=self.compiled.bpf,
            notify=self.compiled.notify_bpf,
            seccomp_nr=self.compiled.seccomp_nr,
            kill=self.compiled.spec.on_violation == "kill",
        )

    def apply(self, result: TargetResult, status: int, outcome: SeccompOutcome | None) -> None:
        """Add the agent's raw outcome to ``result``, named and worded by the broker."""
        from pytest_isolate.policy.notify import RawViolation, decode_violations, syscall_name

        if outcome is None:
            result.failure = "the target ran a test under seccomp= but reported no seccomp outcome"
            result.failure_kind = "protocol"
            return
        raw = [
            RawViolation(arch, nr, args, count, killed)
            for arch, nr, args, count, killed in (outcome.denials)
        ]
        violations = decode_violations(raw, self.compiled.spec)
        killed_by_kernel = None
        if killed_by_sigsys(status):
            kill = outcome.kernel_kill
            killed_by_kernel = "unknown" if kill is None else syscall_name(kill[0], kill[1])
        report_violations(
            result, self.compiled.spec, violations, killed_by_kernel, self.fail_on_violation
        )
        if outcome.error is not None:
            result.sections.append(
                ("seccomp listener", f"servicing the listener failed: {outcome.error[:500]}")
            )


def check_spawned_policy(spec: IsolateSpec, where: str) -> None:
    """Refuse a bad ``seccomp=`` at collection, before any target starts."""
    options = policy_options(spec, from_backend_keywords=False)
    if options is not None:
        build_policy(options, where)


#: Compiled policies by ``seccomp=`` value: every test of a run asks again.
_COMPILED: dict[Hashable, SpawnedPolicy] = {}


def spawned_policy(
    spec: IsolateSpec,
    where: str,
    default: Mapping[str, Any] | None = None,
    arch: str | None = None,
) -> SpawnedPolicy | None:
    """The compiled policy a test's ``seccomp=`` asks for, else ``default``'s, else None.

    ``arch``: Debian's name of the target kernel's architecture when it is
    not the machine's (an arm64 guest): the filter is compiled for its system
    call numbers and audit architecture, never loaded where it would mean
    something else. SpecError when the options are wrong or this machine
    cannot compile a filter (libseccomp missing): both are the user's to fix.
    """
    options = policy_options(spec, from_backend_keywords=False)
    key: Hashable = (spec.seccomp, arch)
    if options is None:
        if default is None:
            return None
        options, key = dict(default), ("default", tuple(sorted(default.items())), arch)
    if key not in _COMPILED:
        _COMPILED[key] = _compile(options, where, arch)
    return _COMPILED[key]


def _compile(options: dict[str, Any], where: str, arch: str | None = None) -> SpawnedPolicy:
    from pytest_isolate.policy import compile_policy, seccomp_available

    policy = build_policy(options, where)
    ok, reason = seccomp_available()
    if not ok:
        raise SpecError(
            f"{where}: seccomp= needs libseccomp in the broker ({reason}); "
            "pip install 'pytest-isolate-sandbox[seccomp]'"
        )
    compiled = compile_policy(policy, arch)
    return SpawnedPolicy(compiled, bool(options.get("fail_on_violation", True)))
