"""Seccomp policies for targets: vocabulary, compilation, violation reports.

Broker side: ``PolicySpec.from_options`` validates the user's options,
``compile_policy`` builds the BPF programs once per spec, ``ViolationMonitor``
services a target's user-notification listener and reports what it was
denied, ``find_kernel_kill`` names a baseline kill from the kernel log.
Child side: ``CompiledPolicy.install()`` after no_new_privs.

Presets (on top of an always-on baseline, see ``preset_contents``):
``default`` denies socket() of every family (socketpair stays allowed),
``strict`` also denies execve/execveat, ``permissive`` is the baseline alone.
"""

from __future__ import annotations

from pytest_isolate.policy.availability import seccomp_available
from pytest_isolate.policy.compiler import CompiledPolicy, compile_policy
from pytest_isolate.policy.decode import Violation
from pytest_isolate.policy.filter_plan import preset_contents
from pytest_isolate.policy.groups import syscall_groups
from pytest_isolate.policy.kmsg import find_kernel_kill, kmsg_position
from pytest_isolate.policy.notify import ViolationMonitor
from pytest_isolate.policy.policy_spec import PolicyError, PolicySpec

__all__ = [
    "CompiledPolicy",
    "PolicyError",
    "PolicySpec",
    "Violation",
    "ViolationMonitor",
    "compile_policy",
    "find_kernel_kill",
    "kmsg_position",
    "preset_contents",
    "seccomp_available",
    "syscall_groups",
]
