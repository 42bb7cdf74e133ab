"""The untrusted target as a namespace jail on the host's own root: collection and tests inside.

The jail is the chroot backend's spawned one (``ForeignRootTarget`` in
host-root mode, ``rootfs="/"``): a tmpfs root holding only the host's
system directories and the running interpreter's directories, the project
read-only at its path, the injected site at ``SITE_PATH``, its own /tmp,
/dev and /proc, no network namespace shared with the host, PID 1 of its
own. A fresh ``python -m pytest_isolate.agent`` is exec'd there with the
broker's interpreter (``sys.executable``) as uid nobody, no capabilities, no
new privileges and the seccomp baseline; it collects, then forks per test.

Why the host's interpreter and packages and the injected site: the jail
shares the host's libc, so the host's Python is the one that runs there,
and its site-packages is where CI installed the project's dependencies
(the project's tests need them, as they would in a plain run). The
injected site comes first on the path so the agent runs the broker's own
copy of pytest and this package however it is installed (an editable
install points into a checkout that the jail must not show). Neither
choice makes the broker import project code: the broker only execs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace

from pytest_isolate.backends.agent_args import coverage_for_target
from pytest_isolate.backends.base import TargetResult
from pytest_isolate.backends.chroot_rootfs import (
    HOST_ROOT,
    ForeignRootConfig,
    ForeignRootTarget,
    _filter_installer,
    make_plan,
)
from pytest_isolate.jail.hostpaths import collapse_nested, is_within
from pytest_isolate.spec import IsolateSpec
from pytest_isolate.wire.agent_protocol import Collected, StartRequest
from pytest_isolate.wire.frames import FrameLimits

#: Processes uid nobody may have at once while the jail runs: stops a fork bomb.
NPROC_LIMIT = 1024


class JailedAgent:
    """A jailed agent that collected; what the untrusted session expects of a started target."""

    def __init__(self, target: ForeignRootTarget) -> None:
        self.target = target

    @property
    def collected(self) -> Collected:
        return self.target.collected

    @property
    def alive(self) -> bool:
        return self.target.alive

    def last_words(self) -> str:
        """The jail's stderr tail (untrusted text: the session neutralises it)."""
        return self.target.stderr.text(1.0)

    def run(self, nodeid: str, spec: IsolateSpec, limits: FrameLimits) -> TargetResult:
        return self.target.run(nodeid, spec, limits)

    def close(self) -> None:
        self.target.close()


def jail_config(rootdir: str, network: bool) -> ForeignRootConfig:
    """The host-root jail: nothing but the project is added, nothing is writable."""
    return ForeignRootConfig(
        rootfs=HOST_ROOT,
        rootdir=rootdir,
        network=network,
        binds=(),
        writable=(),
        user=None,
        seccomp=None,
    )


def without_checkout(
    interpreter_dirs: Iterable[str], package_dir: str, prefixes: Iterable[str]
) -> tuple[str, ...]:
    """The interpreter's directories minus an editable checkout of this package.

    An editable install adds the checkout (its ``.git``, its other files) to
    the interpreter's directories; the injected site stands in for it, so
    the jail need not show it. Directories inside a prefix stay: there the
    package is an ordinary installed one, next to the project's dependencies.
    A prefix inside the checkout (a venv made in it, ``checkout/.venv``) was
    folded into the checkout's entry, so it comes back on its own.
    """
    inside = tuple(prefixes)
    kept, dropped = [], []
    for path in interpreter_dirs:
        if not is_within(package_dir, path) or any(is_within(path, p) for p in inside):
            kept.append(path)
        else:
            dropped.append(path)
    restored = [p for p in inside if any(is_within(p, d) for d in dropped)]
    return collapse_nested((*kept, *restored))


def launch_chroot(
    rootdir: str,
    invocation: str,
    args: Sequence[str],
    limits: FrameLimits,
    network: bool = False,
) -> JailedAgent:
    """Jail, exec the agent, say hello, collect; the jail is killed on any failure."""
    from pytest_isolate.backends.inject import injected_site

    config = jail_config(rootdir, network)
    # As is, not resolved: a venv's python finds its pyvenv.cfg next to this path.
    plan = make_plan(config, injected_site(), sys.executable, nproc=NPROC_LIMIT)
    plan = replace(plan, interpreter_dirs=without_checkout(plan.interpreter_dirs, *_own_source()))
    install = _filter_installer(config, "--isolate-untrusted=chroot")
    start = StartRequest(rootdir, invocation, tuple(args), limits, coverage=coverage_for_target())
    return JailedAgent(ForeignRootTarget.launch(plan, install, HOST_ROOT, start))


def _own_source() -> tuple[str, tuple[str, ...]]:
    from pytest_isolate._package import PACKAGE_DIR as package

    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return package, tuple(os.path.realpath(p) for p in prefixes)
