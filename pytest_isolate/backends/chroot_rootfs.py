"""``isolate("chroot", rootfs=DIR)``: an agent spawned in a namespace jail around a foreign root.

The broker forks a child that jails itself with ``DIR`` as its root file
system and execs ``DIR``'s own ``python3 -m pytest_isolate.agent``
(``pytest_isolate.jail.foreign``), its stdin/stdout a socket pair to the
broker. The broker then talks to it with ``AgentClient`` as it does to a
container's agent: ``hello``, ``start`` (collect once), then one ``run`` per
test, each in a fresh fork inside the jail. One jail and agent per distinct
configuration per broker; ``fresh=True`` makes one per test.

Lifetime: the child has a parent-death signal, and the jail's PID 1 dies
with it, so a SIGKILLed broker leaves nothing; ``close`` kills the child,
reaps it and waits until nothing in the jail holds its stderr any more.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_isolate.backends.base import TargetResult
from pytest_isolate.backends.spawned import SpawnedTargets, sibling_files, start_request
from pytest_isolate.jail.foreign import (
    EXIT_JAIL_FAILED,
    PYTHON_CANDIDATES,
    SITE_PATH,
    ForeignAgentPlan,
    agent_environment,
    choose_root_entries,
    exec_agent,
    explain_agent_exit,
    find_python,
    list_root_dir,
)
from pytest_isolate.jail.jail_config import JailConfig
from pytest_isolate.spec import IsolateSpec, SpecError
from pytest_isolate.supervision.agent_client import AgentClient, AgentDead
from pytest_isolate.supervision.agent_target import AgentTarget
from pytest_isolate.supervision.context import BrokerContext
from pytest_isolate.target import steps
from pytest_isolate.wire.agent_protocol import StartRequest

HELLO_TIMEOUT = 60.0
COLLECT_TIMEOUT = 600.0
STDERR_TAIL = 64 * 1024
#: ``rootfs`` meaning the host's own root: its system dirs and Python, nothing else of ``/``.
HOST_ROOT = "/"
#: How long ``close`` waits for the jail's last process to let go of its stderr.
TEARDOWN_WAIT = 5.0


class ForeignRootError(RuntimeError):
    """The jail or its agent could not start; the message says why and how to fix it."""


@dataclass(frozen=True)
class ForeignRootConfig:
    """What makes two tests share one jail and agent."""

    rootfs: str
    rootdir: str
    network: bool
    binds: tuple[tuple[str, str], ...]
    writable: tuple[str, ...]
    user: int | None
    seccomp: Hashable


def validate_rootfs(value: Hashable, where: str) -> None:
    """Usage errors only; a missing directory fails the test at run time, with the fix."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise SpecError(f"{where}: rootfs={value!r} must be an absolute directory path")


def config_from_spec(spec: IsolateSpec, rootdir: str) -> ForeignRootConfig:
    user = spec.option("user")
    return ForeignRootConfig(
        rootfs=os.path.realpath(str(spec.option("rootfs"))),
        rootdir=rootdir,
        network=bool(spec.network),
        binds=tuple(spec.option("binds") or ()),
        writable=_as_tuple(spec.option("writable")),
        user=None if user is None else int(user),
        seccomp=spec.seccomp,
    )


def _as_tuple(value: Hashable) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]


def check_rootfs(rootfs: str) -> str:
    """The interpreter's jail path, or ForeignRootError naming what is missing and the fix."""
    if not os.path.isdir(rootfs):
        raise ForeignRootError(
            f"rootfs {rootfs!r} is not a directory; make one with "
            f"'python -m pytest_isolate image export debian:bookworm {rootfs}' "
            "or 'debootstrap --include=python3 bookworm DIR'"
        )
    python = find_python(rootfs)
    if python is None:
        raise ForeignRootError(
            f"rootfs {rootfs!r} has no python3 (looked for {', '.join(PYTHON_CANDIDATES)}); "
            "install Python 3.9 or newer in it (debootstrap --include=python3)"
        )
    return python


def make_plan(
    config: ForeignRootConfig, site: Path, python: str, nproc: int | None = None
) -> ForeignAgentPlan:
    """The jail (project and site read-only, the user's binds) and the agent's identity.

    ``config.rootfs == HOST_ROOT``: the host's own system directories and the
    running interpreter's (as the forked chroot jail shows them), not every
    entry of ``/``; ``python`` is then a host path (``sys.executable``).
    """
    from pytest_isolate.jail.hostpaths import default_system_dirs, python_dirs

    binds = (*config.binds, (str(site), SITE_PATH))
    host_root = config.rootfs == HOST_ROOT
    jail = JailConfig(
        project_dir=config.rootdir,
        binds=binds,
        writable=config.writable,
        network=config.network,
        root_source="" if host_root else config.rootfs,
    )
    needed = (config.rootdir, *(path for _host, path in binds), *config.writable)
    if host_root:
        entries, interpreter = default_system_dirs(), python_dirs()
    else:
        entries, interpreter = choose_root_entries(list_root_dir(config.rootfs), needed), ()
    uid, gid = steps.unprivileged_ids()
    if config.user is not None:
        uid = config.user
    return ForeignAgentPlan(
        jail, entries, python, uid, gid, agent_environment(), interpreter, nproc
    )


def _filter_installer(config: ForeignRootConfig, where: str) -> Any:
    """The seccomp layer, compiled here, loaded in the child just before exec."""
    from pytest_isolate.backends.seccomp_layer import build_policy, seccomp_options
    from pytest_isolate.policy import compile_policy

    options = seccomp_options(config.seccomp) or {"policy": "permissive"}
    compiled = compile_policy(build_policy(options, where))

    def install() -> None:
        listener = compiled.install()
        if listener is not None:
            os.close(listener)  # nobody services it: notified calls fail with ENOSYS

    return install


class _StderrTail:
    """Drains the jail's stderr in a thread, keeping the last ``STDERR_TAIL`` bytes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = b""
        self.thread = threading.Thread(target=self._drain, name="isolate-rootfs-stderr")
        self.thread.daemon = True
        self.thread.start()

    def _drain(self) -> None:
        try:
            while chunk := os.read(self.fd, 65536):
                self.data = (self.data + chunk)[-STDERR_TAIL:]
        except OSError:
            pass
        finally:
            os.close(self.fd)

    def text(self, wait: float) -> str:
        self.thread.join(wait)
        return self.data.decode("utf-8", "replace")


class ForeignRootTarget(AgentTarget):
    """A jailed agent that collected and waits for ``run`` requests."""

    def __init__(self, pid: int, link: socket.socket, stderr: _StderrTail, rootfs: str) -> None:
        self.pid = pid
        self.link = link
        self.stderr = stderr
        self.rootfs = rootfs
        self.status: int | None = None
        self.client = AgentClient(link, describe_stream_end=self.describe_end)

    @classmethod
    def launch(
        cls, plan: ForeignAgentPlan, install_filter: Any, rootfs: str, start: StartRequest
    ) -> ForeignRootTarget:
        started = time.monotonic()
        broker_end, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        read_err, write_err = os.pipe2(os.O_CLOEXEC)
        broker = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                steps.set_parent_death_signal(broker)
                steps.new_session()
                os.dup2(agent_end.fileno(), 0)
                os.dup2(agent_end.fileno(), 1)
                os.dup2(write_err, 2)
                steps.close_inherited_fds((0, 1, 2))
                exec_agent(plan, install_filter)
            finally:
                os._exit(EXIT_JAIL_FAILED)
        agent_end.close()
        os.close(write_err)
        target = cls(pid, broker_end, _StderrTail(read_err), rootfs)
        try:
            target.handshake(start, HELLO_TIMEOUT, COLLECT_TIMEOUT)
        except AgentDead as exc:
            target.close()
            raise ForeignRootError(str(exc)) from None
        except BaseException:
            target.close()
            raise
        target.started_in = time.monotonic() - started
        return target

    def _reap(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while self.status is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    if time.monotonic() < deadline:
                        time.sleep(0.005)
                        continue
                    return
                self.status = status
                return
            self.status = 0x9  # reaped elsewhere
            return

    def describe_end(self) -> str:
        """Why the link ended: the jailed process's status and its last stderr, with a fix."""
        self._reap(2.0)
        return explain_agent_exit(self.status, self.stderr.text(2.0), self.rootfs)

    def close(self) -> None:
        """Kill the jail (its PID 1 dies with the child), reap, wait for its last process."""
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap(TEARDOWN_WAIT)
        self.link.close()
        self.stderr.text(TEARDOWN_WAIT)


class ForeignRootTargets(SpawnedTargets[ForeignRootConfig, ForeignRootTarget]):
    """The chroot backend's targets for ``rootfs=`` specs: one per configuration, reused."""

    start_errors = (ForeignRootError, SpecError)

    def describe(self, key: ForeignRootConfig) -> str:
        return f"chroot rootfs {key.rootfs}"

    def launch(
        self,
        item: pytest.Item,
        key: ForeignRootConfig,
        spec: IsolateSpec,
        context: BrokerContext,
    ) -> ForeignRootTarget:
        python = check_rootfs(key.rootfs)
        plan = make_plan(key, self.plugin_site(item.config), python)
        install = _filter_installer(key, item.nodeid)
        files = sibling_files(item, spec, context, lambda other: _same_root(other, key))
        request = start_request(item.config, key.rootdir, files, context.limits)
        return ForeignRootTarget.launch(plan, install, key.rootfs, request)

    def start_failure(self, key: ForeignRootConfig, error: BaseException) -> TargetResult:
        message = f"chroot backend, rootfs={key.rootfs!r}: {error}"
        return TargetResult(failure=message, failure_kind="engine")

    def not_collected(
        self, target: ForeignRootTarget, key: ForeignRootConfig, nodeid: str
    ) -> TargetResult:
        errors = "\n".join(target.collected.errors) or "(no collection error reported)"
        return TargetResult(
            failure="the jailed agent did not collect this test",
            failure_kind="engine",
            sections=[("Collection errors in the jail", errors[-20000:])],
        )

    def prepare_spec(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> None:
        with contextlib.suppress(SpecError, TypeError, ValueError):
            self.prepare(item, spec, context, config_from_spec(spec, str(item.config.rootpath)))

    def run_spec(
        self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext
    ) -> TargetResult:
        return self.run(item, spec, context, config_from_spec(spec, str(item.config.rootpath)))


def _same_root(spec: IsolateSpec, config: ForeignRootConfig) -> bool:
    """Does ``spec`` ask for a jail on the same root with the same settings as ``config``?"""
    try:
        return bool(spec.option("rootfs")) and config_from_spec(spec, config.rootdir) == config
    except (SpecError, TypeError, ValueError):
        return False
