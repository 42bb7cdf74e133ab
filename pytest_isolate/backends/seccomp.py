"""``isolate("seccomp")``: a forked target behind a seccomp-bpf syscall filter.

On top of everything ``process`` gives, the target gets its own PID
namespace (it can neither see nor signal the broker), an environment
scrubbed to an allow-list, an unprivileged uid with no capabilities, no new
privileges, and last a filter compiled once in the broker per policy.
Denied syscalls are reported by name through seccomp user notification.

What fork cannot hide: the target is a copy of the broker's memory, so
anything the broker process holds in memory (a token a conftest read into a
variable) is readable by the test. Environment variables are scrubbed; keep
secrets out of the broker's memory or use a spawned backend.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_isolate.backends.base import Availability
from pytest_isolate.backends.forked import ChildSetup, ForkedBackend
from pytest_isolate.backends.seccomp_layer import (
    POLICY_KEYWORDS,
    PreparedFilter,
    build_policy,
    policy_options,
    sandbox_availability,
    sandboxed,
)
from pytest_isolate.backends.target_watch import TargetWatch
from pytest_isolate.pytest_compat import use_basetemp
from pytest_isolate.spec import IsolateSpec
from pytest_isolate.target import steps
from pytest_isolate.target.reachable import make_reachable
from pytest_isolate.target.sequence import Privileges
from pytest_isolate.target.shared_ns import SharedNamespace


def redirect_basetemp(setup: ChildSetup) -> None:
    """tmp_path under the target's own scratch space, which its unprivileged user owns."""
    use_basetemp(setup.item.config, setup.scratch / "basetemp")


def hand_scratch_to_target_user(scratch: Path) -> None:
    """The scratch directory must be writable by the uid the target drops to."""
    (scratch / "basetemp").mkdir(mode=0o700)
    if os.geteuid() == 0:
        uid, gid = steps.unprivileged_ids()
        os.chown(scratch, uid, gid)
        os.chown(scratch / "basetemp", uid, gid)


class SeccompBackend(ForkedBackend):
    shares_tmp_path = False  # its tmp_path is private: a failing test's files come back
    name = "seccomp"
    summary = "process + PID namespace, scrubbed env, unprivileged uid and a seccomp-bpf filter"
    keywords = POLICY_KEYWORDS
    default_network = False
    default_pids_limit = 1024

    def availability(self) -> Availability:
        return sandbox_availability(super().availability())

    def validate(self, spec: IsolateSpec, where: str) -> None:
        options = policy_options(spec, from_backend_keywords=True) or {}
        build_policy(options, where)

    def prepare(self, spec: IsolateSpec) -> PreparedFilter:
        """The spec's filter, compiled once per spec."""
        options = policy_options(spec, from_backend_keywords=True) or {}
        return PreparedFilter.from_options(options, spec.label)

    _shared: SharedNamespace | None = None
    _shared_failed: str | None = None
    _reachable: tuple[str, ...] | None = None

    def _needed_paths(self, config: pytest.Config) -> tuple[str, ...]:
        """What the unprivileged target must reach: the interpreter, the project, sys.path.

        Computed once per broker (checking sys.path costs a millisecond or two).
        """
        if self._reachable is None:
            from pytest_isolate.jail import python_dirs

            search_path = [p for p in sys.path if p not in ("", "/") and os.path.isdir(p)]
            self._reachable = (
                *python_dirs(),
                str(config.rootpath),
                str(config.invocation_params.dir),
                *search_path,
            )
        return self._reachable

    def fork_target(self, item: pytest.Item, spec: IsolateSpec, prepared: Any) -> int:
        """Into the broker's shared sandbox namespace when the broker is root (one fork)."""
        if self._shared is None and self._shared_failed is None and os.geteuid() == 0:
            try:
                self._shared = SharedNamespace.create(self._needed_paths(item.config))
            except OSError as exc:  # fall back to a namespace per target
                self._shared_failed = str(exc)
        if self._shared is not None:
            return self._shared.fork_inside()
        self._needed_paths(item.config)  # computed before the fork, once
        return os.fork()

    def restriction_fds(self) -> list[int]:
        return [] if self._shared is None else self._shared.child_fds()

    def close(self) -> None:
        super().close()
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def prepare_scratch(self, scratch: Path, spec: IsolateSpec) -> None:
        hand_scratch_to_target_user(scratch)

    def restrict(self, setup: ChildSetup) -> None:
        """Step 7 for seccomp: a PID namespace (in a user namespace when not root), the paths
        the test needs kept reachable, ``tmp_path`` in the scratch space."""
        from pytest_isolate.target.pidns import enter_pid_namespace

        if self._shared is not None:  # forked into the shared PID namespace already
            self._shared.enter_mounts()
        else:
            if os.geteuid() != 0:  # a PID namespace needs CAP_SYS_ADMIN: a user namespace has it
                from pytest_isolate.jail.userns import enter_user_namespace

                enter_user_namespace()
            make_reachable(self._needed_paths(setup.item.config))
            enter_pid_namespace(setup.keep_fds, fresh_proc=True)
        redirect_basetemp(setup)

    def privileges(self, setup: ChildSetup) -> Privileges:
        """A scrubbed environment, an unprivileged user, and the filter."""
        return sandboxed(setup.spec, steps.unprivileged_ids(), setup.prepared)

    def watch(
        self,
        spec: IsolateSpec,
        prepared: PreparedFilter,
        pid: int,
        take_fds: Callable[[], list[int]],
    ) -> TargetWatch:
        return prepared.watch(pid, take_fds)
