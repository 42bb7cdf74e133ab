"""Restriction steps applied inside a freshly forked target, one job each.

Every forked backend (process, seccomp, chroot) and the in-target fork server
call these in one fixed order (see ``pytest_isolate.target.sequence``): a
step that is out of order weakens the ones after it, so the order lives in
one place and each step here stays small enough to test on its own.

All of them run in the child after ``fork()`` and before any untrusted code.
They use only ``os``, ``ctypes`` and ``resource`` so that nothing is imported
lazily after the privilege drop.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
import sys
from collections.abc import Iterable, Mapping

try:  # POSIX only: the plugin must still import on Windows, where these steps never run
    import resource
except ImportError:  # pragma: no cover - not on Linux
    resource = None  # type: ignore[assignment]


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, loaded on first use (a broker that forks loads it before forking)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


if sys.platform.startswith("linux"):
    # Load now, in the broker: find_library runs ldconfig, which a forked target
    # must never pay for (nor spend pids of its namespace on).
    libc()


PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

#: Highest capability number we try to drop from the bounding set; the kernel
#: answers EINVAL past its own last one, which we treat as the end.
_CAP_LAST_GUESS = 63

#: Environment variables a target keeps by default. Everything else (tokens,
#: CI secrets, cloud credentials) is removed before the test runs.
#: What a scrubbed target keeps of its environment: the locale, and the variables
#: Python and pytest themselves read. Named one by one, not by prefix: a CI secret
#: may well be called ``PYTEST_PYPI_TOKEN`` or ``PYTHON_REGISTRY_PASSWORD``.
DEFAULT_ENV_ALLOW = (
    "PATH",
    "HOME",
    "LANG",
    "TERM",
    "TMPDIR",
    "TZ",
    "USER",
    # Python's own (its documented PYTHON* variables that change how code runs)
    "PYTHONPATH",
    "PYTHONSAFEPATH",
    "PYTHONHASHSEED",
    "PYTHONIOENCODING",
    "PYTHONNOUSERSITE",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONPYCACHEPREFIX",
    "PYTHONWARNINGS",
    "PYTHONFAULTHANDLER",
    "PYTHONTRACEMALLOC",
    "PYTHONDEVMODE",
    "PYTHONUTF8",
    "PYTHONWARNDEFAULTENCODING",
    "PYTHONINTMAXSTRDIGITS",
    "PYTHONOPTIMIZE",
    "PYTHONBREAKPOINT",
    "PYTHONMALLOC",
    "PYTHONASYNCIODEBUG",
    "PYTHONCOERCECLOCALE",
    # pytest's and pytest-xdist's (a test may ask which worker it runs in)
    "PYTEST_CURRENT_TEST",
    "PYTEST_VERSION",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_THEME",
    "PYTEST_THEME_MODE",
)
DEFAULT_ENV_ALLOW_PREFIXES = ("LC_",)


def _prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    result = libc().prctl(
        ctypes.c_int(option),
        ctypes.c_ulong(arg2),
        ctypes.c_ulong(arg3),
        ctypes.c_ulong(arg4),
        ctypes.c_ulong(arg5),
    )
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return int(result)


def set_parent_death_signal(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """Die with the broker: if the broker is SIGKILLed the target must not live on.

    ``parent_pid`` closes the race where the parent died between fork and
    prctl: then we are already orphaned and exit at once. A child forked into
    another PID namespace sees its parent as 0 (not in its namespace) until
    orphaned, when its parent becomes that namespace's init.
    """
    if not sys.platform.startswith("linux"):
        return
    _prctl(PR_SET_PDEATHSIG, int(sig))
    if os.getppid() not in (parent_pid, 0):
        os._exit(70)


def new_session() -> None:
    """Leave the broker's session and process group (terminal signals, killpg)."""
    os.setsid()


def blank_descriptors(fds: Iterable[int]) -> None:
    """Point each of ``fds`` at /dev/null: kept open for whoever restores from it, empty."""
    targets = [fd for fd in fds if fd >= 0]
    if not targets:
        return
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in targets:
            if fd != devnull:
                os.dup2(devnull, fd)
    finally:
        if devnull not in targets:
            os.close(devnull)


def close_inherited_fds(keep: Iterable[int]) -> None:
    """Close every descriptor but ``keep``: a leaked fd is a path out of any jail."""
    keep_sorted = sorted({fd for fd in keep if fd >= 0})
    low = 0
    for fd in keep_sorted:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _max_fd())


def _max_fd() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > 1 << 20:
        return 1 << 20
    return int(soft)


def apply_rlimits(mem_limit: int | None, cpu_limit: float | None, nproc: int | None = None) -> None:
    """Kernel-enforced limits that need no privilege: address space, CPU seconds, processes."""
    if mem_limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    if cpu_limit is not None:
        seconds = max(1, int(cpu_limit + 0.999))
        # SIGXCPU at the soft limit, SIGKILL one second later at the hard one.
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    if nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    # No core dumps of a process that may hold the broker's secrets.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def set_non_dumpable() -> None:
    """Refuse ptrace and /proc/<pid>/mem access from same-uid processes."""
    _prctl(PR_SET_DUMPABLE, 0)


def set_no_new_privs() -> None:
    """setuid binaries and file capabilities cannot raise privileges again."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_child_subreaper() -> None:
    """Orphans of our descendants are re-parented to us, so they can be found and killed."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def drop_capability_bounding_set() -> None:
    """Empty the bounding set so no exec can regain a capability."""
    for cap in range(_CAP_LAST_GUESS + 1):
        try:
            _prctl(PR_CAPBSET_DROP, cap)
        except OSError as exc:
            if exc.errno == 22:  # EINVAL: past the kernel's last capability
                break
            if exc.errno == 1:  # EPERM: not privileged; nothing to drop
                return
            raise


def clear_ambient_capabilities() -> None:
    with contextlib.suppress(OSError):  # kernels before 4.3 have no ambient set
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def clear_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (always allowed: it only lowers)."""
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc().capset(ctypes.byref(header), ctypes.byref(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def drop_privileges(uid: int, gid: int, bounding_set_dropped: bool = False) -> None:
    """Become ``uid``/``gid`` with no supplementary groups and no capabilities.

    A root target defeats a syscall deny-list (it can open /proc/<broker>/mem
    with plain open/write), so every backend that claims to stop the test from
    touching the broker drops to an unprivileged uid here.
    ``bounding_set_dropped`` says the parent already emptied the bounding set
    (inherited across fork): one prctl per capability is measurable in a TCG
    guest, where a fork server forks for every test.
    """
    if os.geteuid() != 0:
        # Not root, but perhaps holding every capability of a user namespace
        # (a rootless jail): give them up, since no uid change will.
        if not bounding_set_dropped:
            drop_capability_bounding_set()
        clear_ambient_capabilities()
        clear_capabilities()
        return
    if not bounding_set_dropped:
        drop_capability_bounding_set()
    clear_ambient_capabilities()
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # setresuid from 0 to non-zero clears permitted/effective caps; verify.
    if os.geteuid() == 0 or os.getuid() == 0:
        raise OSError("privilege drop did not take effect")


def scrub_environment(
    extra: Mapping[str, str] | None = None,
    allow: Iterable[str] = DEFAULT_ENV_ALLOW,
    allow_prefixes: Iterable[str] = DEFAULT_ENV_ALLOW_PREFIXES,
) -> None:
    """Keep only an allow-list of variables, then add ``extra`` (the ``env=`` option).

    Works on ``os.environ`` in place so both Python and the C environment
    (seen by subprocesses) change.
    """
    allowed = set(allow)
    prefixes = tuple(allow_prefixes)
    for name in list(os.environ):
        if name in allowed or name.startswith(prefixes):
            continue
        del os.environ[name]
    for name, value in (extra or {}).items():
        os.environ[name] = value


def unprivileged_ids() -> tuple[int, int]:
    """The uid/gid a root broker drops targets to: ``nobody``/``nogroup`` when present."""
    try:
        import pwd

        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except (ImportError, KeyError):
        return 65534, 65534
