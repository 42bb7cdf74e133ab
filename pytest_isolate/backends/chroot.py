"""``isolate("chroot")``: a forked target in a namespace jail of its own.

Not a plain chroot (a plain chroot is escaped in three lines): user (when
not root), mount, PID, network, IPC, UTS and cgroup namespaces, a tmpfs root
holding only the system directories, the running Python, the project
read-only and private scratch space, ``pivot_root`` with the old root
detached, then an unprivileged uid with no capabilities, no new privileges
and the seccomp baseline last. The steps live in ``pytest_isolate.jail``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_isolate.backends.base import Availability, TargetResult
from pytest_isolate.backends.forked import ChildSetup, ForkedBackend
from pytest_isolate.backends.seccomp_layer import (
    PreparedFilter,
    build_policy,
    sandbox_availability,
    sandboxed,
    seccomp_options,
)
from pytest_isolate.backends.target_watch import TargetWatch
from pytest_isolate.jail.jail_config import JailConfig
from pytest_isolate.jail.shared import SharedJail
from pytest_isolate.pytest_compat import use_basetemp
from pytest_isolate.spec import IsolateSpec, SpecError
from pytest_isolate.supervision.context import BrokerContext
from pytest_isolate.target import steps
from pytest_isolate.target.sequence import Privileges

if TYPE_CHECKING:
    from pytest_isolate.backends.chroot_rootfs import ForeignRootTargets

CHROOT_KEYWORDS: Mapping[str, str] = {
    "writable": "host paths bound writable at the same path (weakens the jail)",
    "binds": "{host_path: jail_path} read-only binds (writable when listed in writable)",
    "user": "uid the test runs as (default: nobody)",
    "rootfs": "a foreign root file system (a debootstrap or exported image directory): "
    "a fresh agent runs on its own python3",
}


def _paths(value: Hashable, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, tuple) or not all(
        isinstance(p, str) and p.startswith("/") for p in items
    ):
        raise SpecError(f"{where}: {what}={value!r} must be a list of absolute paths")
    return items


def _binds(value: Hashable, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    ok = isinstance(value, tuple) and all(
        isinstance(p, tuple)
        and len(p) == 2
        and all(isinstance(x, str) and x.startswith("/") for x in p)
        for p in value
    )
    if not ok:
        raise SpecError(
            f"{where}: binds={value!r} must be a dict of absolute host path to jail path"
        )
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class PreparedJail:
    """What every target of one chroot spec shares, made once in the broker."""

    jail: JailConfig  # its project directory filled in per item
    interpreter_dirs: tuple[str, ...]
    filter: PreparedFilter


class ChrootBackend(ForkedBackend):
    shares_tmp_path = False  # its tmp_path is private: a failing test's files come back
    name = "chroot"
    summary = (
        "namespace jail: own root with only system dirs, Python and the project "
        "(read-only), no network, uid nobody"
    )
    keywords = CHROOT_KEYWORDS
    default_network = False
    default_pids_limit = 1024
    _foreign_roots: ForeignRootTargets | None = None
    #: jails built once and joined per test (root only), by configuration
    _shared_jails: dict[Any, SharedJail] | None = None
    _shared_failed: str | None = None
    #: the shared jail the target being forked joins (None: build one per test)
    _joining: SharedJail | None = None

    def availability(self) -> Availability:
        return sandbox_availability(super().availability())

    def validate(self, spec: IsolateSpec, where: str) -> None:
        _paths(spec.option("writable"), "writable", where)
        _binds(spec.option("binds"), where)
        user = spec.option("user")
        if user is not None and (isinstance(user, bool) or not isinstance(user, int) or user < 0):
            raise SpecError(f"{where}: user={user!r} must be a numeric uid")
        if spec.option("rootfs") is not None:
            from pytest_isolate.backends.chroot_rootfs import validate_rootfs

            validate_rootfs(spec.option("rootfs"), where)
        build_policy(_filter_options(spec), where)

    def run(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> TargetResult:
        """A foreign root needs a spawned agent (``chroot_rootfs``); the host's own root a fork."""
        if not self.forks(spec):
            return self._roots().run_spec(item, spec, context)
        return super().run(item, spec, context)

    def target_gone(self, item: pytest.Item, spec: IsolateSpec) -> None:
        """Empty the shared jail's /tmp and /dev/shm: nothing of this test reaches the next.

        Only once the target is dead: one still exiting (or one that forged
        its end) could write there again after an earlier emptying.
        """
        # This test's jail, not the one of the target forked ahead meanwhile.
        jail = self._shared_jail(item, self._prepared_for(spec), create=False)
        if jail is not None:
            jail.empty_scratch_areas()

    def forks(self, spec: IsolateSpec) -> bool:
        """A foreign root runs in a spawned, jailed agent; the host's own root in a fork."""
        return spec.option("rootfs") is None

    def prepare_target(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> None:
        """Before the test's line: start the jailed agent of a foreign root."""
        if spec.option("rootfs") is not None:
            self._roots().prepare_spec(item, spec, context)

    def _roots(self) -> ForeignRootTargets:
        if self._foreign_roots is None:
            from pytest_isolate.backends.chroot_rootfs import ForeignRootTargets

            self._foreign_roots = ForeignRootTargets()
        return self._foreign_roots

    def close(self) -> None:
        if self._foreign_roots is not None:
            self._foreign_roots.close()
        for jail in (self._shared_jails or {}).values():
            jail.close()
        self._shared_jails = None
        super().close()

    def fork_target(self, item: pytest.Item, spec: IsolateSpec, prepared: PreparedJail) -> int:
        """Into a jail built once for this configuration, when the broker is root."""
        self._joining = self._shared_jail(item, prepared)
        return os.fork() if self._joining is None else self._joining.fork_inside()

    def _shared_jail(
        self, item: pytest.Item, prepared: PreparedJail, create: bool = True
    ) -> SharedJail | None:
        """The jail shared by tests of this configuration (root broker); made when first asked."""
        from dataclasses import replace

        if self._shared_failed is not None or os.geteuid() != 0:
            return None
        jail = replace(prepared.jail, project_dir=str(item.config.rootpath))
        jails = self._shared_jails = self._shared_jails or {}
        if jail not in jails and not create:
            return None
        if jail not in jails:
            try:
                jails[jail] = SharedJail.create(jail, prepared.interpreter_dirs)
            except OSError as exc:  # build one per test instead
                self._shared_failed = str(exc)
                return None
        return jails[jail]

    def restriction_fds(self) -> list[int]:
        return [] if self._joining is None else self._joining.child_fds()

    def _filter(self, spec: IsolateSpec, where: str) -> PreparedFilter:
        """``seccomp=`` on top of the jail; permissive when not given."""
        return PreparedFilter.from_options(_filter_options(spec), where)

    def prepare(self, spec: IsolateSpec) -> PreparedJail:
        """The jail's configuration, the interpreter's directories and the filter, once per spec."""
        from pytest_isolate.jail import python_dirs

        writable = _paths(spec.option("writable"), "writable", spec.label)
        jail = JailConfig(
            project_dir="",  # filled per item: the rootdir of its config
            binds=_binds(spec.option("binds"), spec.label),
            writable=writable,
            network=bool(spec.network),
        )
        return PreparedJail(jail, tuple(python_dirs()), self._filter(spec, spec.label))

    def restrict(self, setup: ChildSetup) -> None:
        """The jail's order: namespaces and root first, privilege drops after, seccomp last."""
        from dataclasses import replace

        from pytest_isolate.jail import enter_jail

        prepared: PreparedJail = setup.prepared
        jail = prepared.jail
        config = setup.item.config
        if self._joining is not None:
            self._joining.enter()  # the scratch directory lives in the jail's own /tmp
            os.makedirs(setup.scratch, mode=0o700, exist_ok=True)
        else:
            jail = replace(jail, project_dir=str(config.rootpath), tmp_dirs=(str(setup.scratch),))
            enter_jail(jail, setup.keep_fds, interpreter_dirs=prepared.interpreter_dirs)
        os.chdir(
            config.invocation_params.dir if os.path.isdir(config.invocation_params.dir) else "/"
        )
        _make_basetemp(setup, *_target_user(setup.spec))

    def privileges(self, setup: ChildSetup) -> Privileges:
        """A scrubbed environment, the jail's user (``user=``, or nobody), and the filter."""
        return sandboxed(
            setup.spec,
            _target_user(setup.spec),
            setup.prepared.filter,
            ("pid", "mnt", "ipc", "uts"),
        )

    def watch(
        self, spec: IsolateSpec, prepared: PreparedJail, pid: int, take_fds: Callable[[], list[int]]
    ) -> TargetWatch:
        return prepared.filter.watch(pid, take_fds)


def _filter_options(spec: IsolateSpec) -> Mapping[str, Any]:
    return seccomp_options(spec.seccomp) or {"policy": "permissive"}


def _target_user(spec: IsolateSpec) -> tuple[int, int]:
    uid, gid = steps.unprivileged_ids()
    user = spec.option("user")
    return (uid if user is None else int(user)), gid


def _make_basetemp(setup: ChildSetup, uid: int, gid: int) -> None:
    """tmp_path lives in the jail's private tmpfs, owned by the test's user."""
    base = Path(setup.scratch) / "basetemp"
    base.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(setup.scratch, uid, gid)
        os.chown(base, uid, gid)
    use_basetemp(setup.item.config, base)
