"""A jail around a foreign root file system, with a fresh agent exec'd inside it.

The forked chroot jail shows the host's own system directories and keeps the
broker's already-imported pytest. A foreign root (a debootstrap directory, an
exported image) has its own libc and Python, so the broker's modules would
not match: the jailed process instead execs the root's ``python3`` running
``pytest_isolate.agent``, with pytest and this package injected read-only.

The jail is the one ``enter_jail`` builds, with ``JailConfig.root_source``
set: a tmpfs root holding the foreign root's top-level entries bound
read-only (symlinks such as ``/bin -> usr/bin`` recreated), the jail's own
/dev, /proc and /tmp, the project read-only at its host path and the
injected site at ``SITE_PATH``.

Why the agent does not stay root: it imports the project's conftest files
and test modules while collecting, so it is as untrusted as a test. It drops
to an unprivileged uid with no capabilities and no new privileges, and the
seccomp baseline is loaded before the exec (filters survive ``execve``); its
per-test children inherit all of that.

Pure choices (``choose_root_entries``, ``resolve_in_root``,
``explain_agent_exit``) are separated from ``exec_agent``, the child-side
sequence that never returns.
"""

from __future__ import annotations

import os
import posixpath
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from pytest_isolate.jail.enter import enter_jail
from pytest_isolate.jail.hostpaths import is_within
from pytest_isolate.jail.jail_config import JailConfig, JailError
from pytest_isolate.target import steps

#: Where the injected packages appear in the jail (as in a container).
SITE_PATH = "/opt/pytest-isolate/site"
#: Entries of the foreign root the jail provides itself (or leaves out: /sys).
JAIL_OWN_ENTRIES = frozenset({"dev", "proc", "sys", "tmp"})
#: Interpreters tried, in order, inside the foreign root.
PYTHON_CANDIDATES = ("/usr/local/bin/python3", "/usr/bin/python3", "/bin/python3")
MIN_PYTHON = (3, 9)
_MAX_SYMLINKS = 40

#: Exit codes of the jailed process before the agent runs; ``explain_agent_exit`` words them.
EXIT_PYTHON_TOO_OLD = 86
EXIT_JAIL_FAILED = 87
EXIT_EXEC_FAILED = 88

#: Run by the foreign Python before anything of ours: old Pythons (even 2.7)
#: parse it, and say why they cannot run the agent instead of a SyntaxError.
AGENT_BOOTSTRAP = (
    "import sys\n"
    f"if sys.version_info < {MIN_PYTHON!r}:\n"
    "    sys.stderr.write('pytest-isolate: python %d.%d is too old\\n' % sys.version_info[:2])\n"
    f"    sys.exit({EXIT_PYTHON_TOO_OLD})\n"
    "import runpy\n"
    "runpy.run_module('pytest_isolate.agent', run_name='__main__', alter_sys=True)\n"
)


@dataclass(frozen=True)
class ForeignAgentPlan:
    """What the forked child needs to jail itself and exec the agent (decided in the broker)."""

    jail: JailConfig
    #: Jail paths of the foreign root's entries to bind (``choose_root_entries``).
    entries: tuple[str, ...]
    #: The interpreter's path inside the jail (``find_python``).
    python: str
    uid: int
    gid: int
    env: Mapping[str, str]
    #: Host interpreter directories bound at the same path (the host-root mode).
    interpreter_dirs: tuple[str, ...] = ()
    #: RLIMIT_NPROC for the agent and its tests (the jail's uid), None: unchanged.
    nproc: int | None = None


# -- pure ------------------------------------------------------------------
def choose_root_entries(
    list_dir: Callable[[str], Iterable[tuple[str, bool]]], needed: Iterable[str]
) -> tuple[str, ...]:
    """Jail paths of the foreign root to bind so that every ``needed`` path can be mounted.

    ``list_dir(jail_dir)`` yields (name, is a real directory) for a directory
    of the root. A root entry that contains a needed path (``/opt`` for
    ``/opt/pytest-isolate/site``, ``/home`` for a project under /home) is
    not bound whole, since its read-only bind would leave no place for the
    mount point: its children are bound instead, recursively, and the
    directory itself is made on the jail's tmpfs.
    """
    wanted = tuple(posixpath.normpath(p) for p in needed)
    chosen: list[str] = []

    def walk(directory: str) -> None:
        for name, is_dir in sorted(list_dir(directory)):
            path = posixpath.join(directory, name)
            if directory == "/" and name in JAIL_OWN_ENTRIES:
                continue
            inside = [p for p in wanted if p != path and is_within(p, path)]
            if is_dir and inside:
                walk(path)
            elif path not in wanted:
                chosen.append(path)

    walk("/")
    return tuple(chosen)


def resolve_in_root(root: str, path: str, read_link: Callable[[str], str | None]) -> str | None:
    """``path`` with every symlink resolved as if ``root`` were ``/``; None if a loop.

    ``read_link(host_path)`` returns a link's target, or None when the host
    path is not a symlink. Absolute targets restart at the root, ``..``
    stops at it: the answer is always a path inside the root.
    """
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        target = read_link(root + "/" + "/".join([*resolved, part]))
        if target is None:
            resolved.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINKS:
            return None
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p] + parts
    return "/" + "/".join(resolved)


def agent_argv(python: str) -> list[str]:
    """``-s``: no user site-packages; ``-B``: never write bytecode into the project."""
    return [python, "-s", "-B", "-c", AGENT_BOOTSTRAP]


def agent_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A fresh environment: nothing of the broker's crosses (a spawned target's advantage)."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONPATH": SITE_PATH,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra or {})
    return env


def explain_agent_exit(status: int | None, stderr_tail: str, rootfs: str) -> str:
    """Words for a jailed agent that ended before or while serving: what happened, and the fix."""
    tail = stderr_tail.strip()
    if status is not None and os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        if code == EXIT_PYTHON_TOO_OLD:
            found = tail.splitlines()[-1] if tail else "its python is too old"
            return (
                f"the python3 in rootfs {rootfs!r} cannot run the agent ({found}); "
                f"install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer in it"
            )
        if code in (EXIT_JAIL_FAILED, EXIT_EXEC_FAILED):
            return f"the jail around rootfs {rootfs!r} could not be built: {tail[-2000:]}"
        what = f"the jailed agent exited with status {code}"
    elif status is not None and os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        what = f"the jailed agent was killed by signal {number} ({signal.Signals(number).name})"
    else:
        what = "the jailed agent went away"
    return what + (f"; its stderr ended with:\n{tail[-3000:]}" if tail else "")


# -- thin: the host's file system --------------------------------------------
def list_root_dir(root: str) -> Callable[[str], list[tuple[str, bool]]]:
    """``list_dir`` for ``choose_root_entries`` over a real directory."""

    def list_dir(directory: str) -> list[tuple[str, bool]]:
        host = root + directory if directory != "/" else root
        out = []
        for entry in os.scandir(host):
            out.append((entry.name, entry.is_dir(follow_symlinks=False)))
        return out

    return list_dir


def read_link_or_none(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def find_python(root: str) -> str | None:
    """The first candidate interpreter that is an executable file inside ``root``."""
    for candidate in PYTHON_CANDIDATES:
        resolved = resolve_in_root(root, candidate, read_link_or_none)
        if resolved is None:
            continue
        host = root + resolved
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return candidate
    return None


# -- thin: the child, after the broker forked it -------------------------------
def exec_agent(plan: ForeignAgentPlan, install_filter: Callable[[], None]) -> NoReturn:
    """Jail this process, drop privileges, load seccomp, exec the agent. Never returns.

    Called with the broker link on fds 0/1 and the stderr pipe on fd 2, every
    other fd closed. ``enter_jail`` forks twice (PID namespace): the caller's
    process stays outside and ends as the agent ends; this function continues
    in PID 2 of the new namespace. Imports nothing: the broker may have
    threads (stderr drains), and an import after fork could wait forever on
    a lock one of them held.
    """
    try:
        enter_jail(
            plan.jail, (0, 1, 2), interpreter_dirs=plan.interpreter_dirs, system_dirs=plan.entries
        )
        os.chdir("/")
        steps.apply_rlimits(None, None, plan.nproc)  # no core dumps
        steps.drop_privileges(plan.uid, plan.gid)
        steps.set_no_new_privs()
        install_filter()
    except (JailError, OSError) as exc:
        _die(f"pytest-isolate: {exc}", EXIT_JAIL_FAILED)
    try:
        os.execve(plan.python, agent_argv(plan.python), dict(plan.env))
    except OSError as exc:
        _die(f"pytest-isolate: cannot exec {plan.python} in the jail: {exc}", EXIT_EXEC_FAILED)


def _die(message: str, code: int) -> NoReturn:
    try:
        os.write(2, (message + "\n").encode("utf-8", "replace"))
    finally:
        os._exit(code)
