"""Can this machine build a jail? Answered by trying, explained for ``--isolate-doctor``.

Trying beats reading sysctls (containers, AppArmor and LSMs refuse in ways no
single file shows); the sysctls only serve to word the fix.
"""

from __future__ import annotations

import os

from pytest_isolate.jail import syscalls
from pytest_isolate.jail.userns import enter_user_namespace

_ALL_NAMESPACES = (
    syscalls.CLONE_NEWNS
    | syscalls.CLONE_NEWPID
    | syscalls.CLONE_NEWNET
    | syscalls.CLONE_NEWIPC
    | syscalls.CLONE_NEWUTS
    | syscalls.CLONE_NEWCGROUP
)

_SYSCTLS = {
    "unprivileged_userns_clone": "/proc/sys/kernel/unprivileged_userns_clone",
    "max_user_namespaces": "/proc/sys/user/max_user_namespaces",
    "apparmor_restrict": "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
}


def jail_available() -> tuple[bool, str]:
    """(True, how) when namespaces can be made here, else (False, why and how to fix it)."""
    if not hasattr(os, "fork") or not os.path.exists("/proc/self/ns"):
        return False, "the chroot backend needs Linux namespaces (this is not Linux)"
    failure = _try_namespaces()
    sysctls = {name: _read_int(path) for name, path in _SYSCTLS.items()}
    return explain(failure, os.geteuid() == 0, sysctls)


def explain(
    failure: tuple[str, int] | None, is_root: bool, sysctls: dict[str, int | None]
) -> tuple[bool, str]:
    """Word the outcome of a trial: ``failure`` is (step, errno) or None on success."""
    if failure is None:
        how = "as root" if is_root else "rootless, through an unprivileged user namespace"
        return True, f"mount, pid, net, ipc, uts and cgroup namespaces work ({how})"
    step, err = failure
    reason = f"{step} failed: {os.strerror(err)}"
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


def _try_namespaces() -> tuple[str, int] | None:
    """Fork a child that enters every namespace; its exit code is 0 or step*256+errno."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            step = 1
            if os.geteuid() != 0:
                enter_user_namespace()
            step = 2
            syscalls.unshare(_ALL_NAMESPACES)
        except OSError as exc:
            code = step * 64 + min(exc.errno or 1, 63)
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    if code < 0:
        return ("trial", 4)  # EINTR-like: killed by a signal
    step_name = "user namespace" if code // 64 == 1 else "unshare"
    return (step_name, code % 64)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None
