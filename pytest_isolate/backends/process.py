"""``isolate("process")``: a fresh forked process per test.

Stops a test from crashing, hanging or leaking into the run (and from
outliving its test); it does not stop the test from reading files, the
network or the broker's environment. Use ``seccomp`` or ``chroot`` for that,
or layer a policy here with ``seccomp="default"`` (no privilege drop: the
filter alone, after no_new_privs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pytest_isolate.backends.forked import ChildSetup, ForkedBackend
from pytest_isolate.backends.seccomp_layer import (
    PreparedFilter,
    build_policy,
    policy_options,
)
from pytest_isolate.backends.target_watch import TargetWatch
from pytest_isolate.spec import IsolateSpec
from pytest_isolate.target.sequence import Privileges


class ProcessBackend(ForkedBackend):
    name = "process"
    summary = "a fresh forked process per test: crashes, hangs and leaks stay in it"

    def validate(self, spec: IsolateSpec, where: str) -> None:
        options = policy_options(spec, from_backend_keywords=False)
        if options is not None:
            build_policy(options, where)

    def prepare(self, spec: IsolateSpec) -> PreparedFilter | None:
        """The filter of ``seccomp=``, if any, compiled once per spec."""
        options = policy_options(spec, from_backend_keywords=False)
        return None if options is None else PreparedFilter.from_options(options, spec.label)

    def privileges(self, setup: ChildSetup) -> Privileges:
        """As a plain process; with ``seccomp=``, ``no_new_privs`` and the filter last."""
        privileges = super().privileges(setup)
        if setup.prepared is None:
            return privileges
        return replace(privileges, no_new_privs=True, seccomp=setup.prepared.compiled)

    def watch(
        self, spec: IsolateSpec, prepared: Any, pid: int, take_fds: Callable[[], list[int]]
    ) -> TargetWatch:
        return TargetWatch() if prepared is None else prepared.watch(pid, take_fds)
