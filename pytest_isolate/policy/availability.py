"""Can this machine run the seccomp backend? For ``--isolate-doctor``.

Each check says what is missing and how to fix it, because "seccomp not
available" alone leaves the user guessing between a missing Python package,
a missing C library and an old or restricted kernel.
"""

from __future__ import annotations

import os

_ACTIONS_AVAIL = "/proc/sys/kernel/seccomp/actions_avail"


def _kernel_actions() -> set[str]:
    try:
        with open(_ACTIONS_AVAIL, encoding="ascii") as stream:
            return set(stream.read().split())
    except OSError:
        return set()


def seccomp_available() -> tuple[bool, str]:
    """(usable, explanation): libseccomp importable, kernel filters, user notification."""
    try:
        import pyseccomp  # noqa: F401
    except ImportError as exc:
        return False, (
            f"pyseccomp cannot be imported ({exc}); "
            "fix: pip install 'pytest-isolate-sandbox[seccomp]'"
        )
    except OSError as exc:  # pyseccomp found but libseccomp.so did not load
        return False, (
            f"libseccomp cannot be loaded ({exc}); fix: install libseccomp2 "
            "(apt-get install libseccomp2, dnf install libseccomp)"
        )
    if not os.path.exists("/proc/self/status"):
        return False, "cannot read /proc/self/status to check kernel seccomp support; mount /proc"
    with open("/proc/self/status", encoding="ascii", errors="replace") as stream:
        if not any(line.startswith("Seccomp:") for line in stream):
            return (
                False,
                "the kernel has no seccomp support (CONFIG_SECCOMP_FILTER); use a newer kernel",
            )
    actions = _kernel_actions()
    missing = {"kill_process", "user_notif", "errno"} - actions if actions else set()
    if missing:
        return False, (
            f"the kernel lacks seccomp actions {sorted(missing)} (Linux >= 5.5 needed for "
            "user notification with the answers we use); use a newer kernel"
        )
    try:
        from pytest_isolate.policy.notify import notif_sizes

        notif_sizes()
    except OSError as exc:
        return False, f"seccomp user notification is unavailable ({exc}); use Linux >= 5.5"
    return True, "libseccomp and kernel seccomp filters with user notification are available"
