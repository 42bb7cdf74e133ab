"""The baseline filter as a container engine's seccomp profile, for targets that cannot load ours.

A test in a container of another architecture runs under ``qemu-user``,
which refuses ``prctl(PR_SET_SECCOMP)`` and ``seccomp()`` for the program it
emulates, and whose real system calls are the host's, numbered as the host
numbers them. So the per-test filter the agent's child loads cannot work
there, and one compiled for the emulated architecture would filter nothing
the kernel sees. The engine's runtime (runc) loads a profile natively, before
the container's first program, for the host's architecture and its 32-bit
companion: this module writes our baseline (``filter_plan.baseline_plan``)
in that profile's JSON form, so the same calls are killed there.

Masked equality in the profile: ``value`` is the mask and ``valueTwo`` the
datum, as libseccomp's ``SCMP_CMP_MASKED_EQ`` takes them.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pytest_isolate.arches import kernel_arches
from pytest_isolate.policy.filter_plan import ALLOW, ENOSYS, KILL, baseline_plan

_ENOSYS = 38

_ACTIONS = {KILL: "SCMP_ACT_KILL_PROCESS", ENOSYS: "SCMP_ACT_ERRNO", ALLOW: "SCMP_ACT_ALLOW"}


def engine_profile() -> dict[str, Any]:
    """The baseline as a Docker seccomp profile, for the architectures the kernel runs natively.

    Any other (x32 on x86-64) gets the profile's bad-architecture answer.
    """
    plan = baseline_plan()
    rules: list[dict[str, Any]] = []
    for rule in plan.rules:
        entry: dict[str, Any] = {"names": [rule.syscall], "action": _ACTIONS[rule.action]}
        if rule.action == ENOSYS:
            entry["errnoRet"] = _ENOSYS
        if rule.test is not None:
            entry["args"] = [
                {
                    "index": rule.test.index,
                    "value": rule.test.mask,
                    "valueTwo": rule.test.value,
                    "op": "SCMP_CMP_MASKED_EQ",
                }
            ]
        rules.append(entry)
    # The agent loads no filter in such a target, and nothing in it may load one later.
    rules.append({"names": ["seccomp"], "action": "SCMP_ACT_KILL_PROCESS"})
    return {
        "defaultAction": _ACTIONS[plan.default_action],
        "architectures": [f"SCMP_ARCH_{arch.seccomp_arch}" for arch in kernel_arches()],
        "syscalls": rules,
    }


@functools.cache
def engine_profile_json() -> str:
    """The profile as the engine's ``seccomp=`` security option takes it (built once)."""
    return json.dumps(engine_profile(), separators=(",", ":"))
