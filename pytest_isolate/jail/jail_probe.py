"""Can this machine build a jail? Answered by trying, explained for ``--isolate-doctor``.

Trying beats reading sysctls (containers, AppArmor and LSMs refuse in ways no
single file shows); the sysctls only serve to word the fix.
"""

from __future__ import annotations

import errno
import functools
import os
import sys

from pytest_isolate.jail.enter import enter_jail
from pytest_isolate.jail.jail_config import JailConfig, JailError

_SYSCTLS = {
    "unprivileged_userns_clone": "/proc/sys/kernel/unprivileged_userns_clone",
    "max_user_namespaces": "/proc/sys/user/max_user_namespaces",
    "apparmor_restrict": "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
}


def jail_available() -> tuple[bool, str]:
    """(True, how) when namespaces can be made here, else (False, why and how to fix it).

    Tried once per process and user (a trial forks and builds a jail, ~10 ms).
    """
    return _jail_available_as(os.geteuid())


@functools.cache
def _jail_available_as(euid: int) -> tuple[bool, str]:
    if not hasattr(os, "fork") or not os.path.exists("/proc/self/ns"):
        return False, "the chroot backend needs Linux namespaces (this is not Linux)"
    failure = _try_jail()
    sysctls = {name: _read_int(path) for name, path in _SYSCTLS.items()}
    return explain(failure, euid == 0, sysctls)


def explain(
    failure: tuple[str, int, str] | None, is_root: bool, sysctls: dict[str, int | None]
) -> tuple[bool, str]:
    """Word the outcome of a trial: ``failure`` is (step, errno, message) or None on success."""
    if failure is None:
        how = "as root" if is_root else "rootless, through an unprivileged user namespace"
        return True, f"a jail (mount, pid, net, ipc, uts and cgroup namespaces) works ({how})"
    step, err, detail = failure
    reason = f"{step} failed: {os.strerror(err) if err else detail or 'no answer'}"
    if err not in (errno.EPERM, errno.EACCES, errno.ENOSPC, errno.EINVAL):
        return False, f"{reason}. Run with --isolate-doctor on the failing machine and report it."
    if is_root:
        return False, (
            f"{reason}. Root cannot create namespaces here, probably inside a container "
            "without privileges: run with --privileged or --cap-add SYS_ADMIN and an "
            "unconfined seccomp/AppArmor profile, or use the container backend."
        )
    fixes = []
    if sysctls.get("unprivileged_userns_clone") == 0:
        fixes.append("sysctl -w kernel.unprivileged_userns_clone=1")
    if sysctls.get("max_user_namespaces") == 0:
        fixes.append("sysctl -w user.max_user_namespaces=15000")
    if sysctls.get("apparmor_restrict") == 1:
        fixes.append(
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "
            "(or an AppArmor profile allowing userns for this Python)"
        )
    if not fixes:
        fixes.append("run as root, or allow unprivileged user namespaces on this kernel")
    return False, f"{reason}. Unprivileged user namespaces are refused; fix: " + "; ".join(fixes)


def _try_jail() -> tuple[str, int, str] | None:
    """Build a real (empty) jail in a child; None, or the failing step and its errno.

    The whole jail, not just unshare: a fresh /proc or pivot_root can fail
    where namespaces work (a container with a masked /proc, a root that is
    not a mount point). The interpreter's directories are left out: whether
    a given user can reach them is a question for the real run.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            config = JailConfig(project_dir=_trial_project_dir())
            enter_jail(config, (write_end,), interpreter_dirs=())
            os.write(write_end, b"ok")
        except JailError as exc:
            cause = exc.__cause__
            err = cause.errno if isinstance(cause, OSError) and cause.errno else 0
            os.write(write_end, f"{exc.step or 'jail'}\0{err}\0{exc}"[:400].encode())
        except BaseException as exc:
            os.write(write_end, f"jail\0\0{exc!r}"[:400].encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 512):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return parse_trial_answer(b"".join(chunks))


def _trial_project_dir() -> str:
    for candidate in ("/usr", "/tmp", os.path.realpath(sys.prefix)):
        if os.access(candidate, os.R_OK | os.X_OK):
            return candidate
    return "/usr"


def parse_trial_answer(answer: bytes) -> tuple[str, int, str] | None:
    """The trial child's answer: b"ok", or b"<step>\\0<errno>\\0<message>"; silence fails."""
    if answer == b"ok":
        return None
    step, _sep, rest = answer.decode(errors="replace").partition("\0")
    err, _sep, detail = rest.partition("\0")
    return (step or "trial", int(err) if err.isdigit() else 0, detail)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None
