"""Fail closed: before the test runs, the target checks that its layers are really in force.

A restriction step that silently did nothing (a filter that did not load, a
privilege drop that was skipped, a namespace that was not entered) must not
leave a test running unprotected. After the restriction sequence, the target
reads what the kernel says of it (``/proc/self/status``, its namespaces, its
cgroup) and compares that with what its backend promised. A layer missing
fails the test before any of its code runs, naming the layer; the layers in
force become the test's receipt, the ``isolate_layers`` property that reaches
the report and JUnit XML.

Runs in the child after the seccomp filter is loaded: reading its own
``/proc`` entries is something every policy allows. Python 3.9 syntax.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

#: The property every isolated test's reports carry: the layers that protected it.
RECEIPT_PROPERTY = "isolate_layers"


class LayerMissing(RuntimeError):
    """A layer the backend promised is not in force; the message names it."""


@dataclass(frozen=True)
class Promise:
    """What a target's backend promised, to be checked against the kernel's view."""

    #: The uid and gid the target dropped to (None: it kept the broker's).
    uid: Tuple[int, int] | None = None
    no_new_privs: bool = False
    #: How many seccomp filters at least (0: none promised).
    seccomp_filters: int = 0
    #: Capabilities emptied: effective, permitted, ambient.
    no_capabilities: bool = False
    #: The bounding set emptied too (what an ``execve`` could gain back without
    #: ``no_new_privs``; a hardened container's root lacks the right to empty it).
    empty_bounding_set: bool = False
    #: Namespaces that must differ from the broker's: kind -> the broker's inode.
    other_namespaces: Tuple[Tuple[str, int], ...] = ()


def parse_status(text: str) -> Dict[str, str]:
    """``/proc/self/status`` as a mapping of its fields."""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def judge(
    promise: Promise,
    status: Dict[str, str],
    namespaces: Dict[str, int],
) -> List[str]:
    """The layers in force, in the order they were taken; ``LayerMissing`` for the first gap.

    Pure: every input is what the kernel said, so each case is a table test.
    """
    # A process of its own, by construction: the receipt's first word. (Its new
    # session is not judged here: setsid cannot fail without raising.)
    held: List[str] = ["forked"]
    for kind, broker_inode in promise.other_namespaces:
        if namespaces.get(kind) in (None, broker_inode):
            raise LayerMissing(f"{kind} namespace: the target shares the broker's")
        held.append(f"{kind}ns")
    if promise.uid is not None:
        uids = status.get("Uid", "").split()
        gids = status.get("Gid", "").split()
        uid, gid = promise.uid
        if not uids or any(int(u) != uid for u in uids) or any(int(g) != gid for g in gids):
            raise LayerMissing(f"user: expected uid {uid} gid {gid}, the kernel says Uid {uids}")
        held.append(f"uid={uid}")
    if promise.no_capabilities:
        fields = ("CapEff", "CapPrm", "CapAmb") + (
            ("CapBnd",) if promise.empty_bounding_set else ()
        )
        for field in fields:
            # A kernel that does not show the ambient set (gVisor) cannot hide one
            # there: ambient capabilities are always a subset of the permitted.
            shown = status.get(field) or (status.get("CapPrm") if field == "CapAmb" else None)
            if int(shown or "1", 16) != 0:
                raise LayerMissing(f"capabilities: {field} is {status.get(field)}")
        held.append("no-capabilities")
    if promise.no_new_privs:
        if status.get("NoNewPrivs") != "1":
            raise LayerMissing("no_new_privs: not set")
        held.append("no_new_privs")
    if promise.seccomp_filters:
        mode = status.get("Seccomp")
        # Seccomp_filters is there from Linux 5.9; before, the mode alone is checked.
        filters = int(status.get("Seccomp_filters", str(promise.seccomp_filters)) or 0)
        if mode != "2" or filters < promise.seccomp_filters:
            raise LayerMissing(
                f"seccomp filter: the kernel says mode {mode}, {filters} filter(s); "
                f"{promise.seccomp_filters} promised"
            )
        held.append(f"seccomp({filters})")
    return held


def namespace_inodes(kinds: Tuple[str, ...]) -> Dict[str, int]:
    """This process's namespaces of ``kinds``, as inode numbers."""
    found: Dict[str, int] = {}
    for kind in kinds:
        with contextlib.suppress(OSError):
            found[kind] = os.stat(f"/proc/self/ns/{kind}").st_ino
    return found


def in_cgroup(cgroups: str, membership: str) -> bool:
    """Whether ``/proc/self/cgroup`` shows ``membership`` (``pids:/PATH``, ``:/PATH``)."""
    return any(line.partition(":")[2] == membership for line in cgroups.splitlines())


def check_membership(membership: str, pid: int | str = "self") -> bool:
    """True when process ``pid`` is in the cgroup its tree put it in; ``LayerMissing`` if not.

    Read by the broker, in its own cgroup namespace: a target's may be its
    jail's, which would show another path.
    """
    with open(f"/proc/{pid}/cgroup") as handle:
        cgroups = handle.read()
    if not in_cgroup(cgroups, membership):
        shown = " | ".join(cgroups.splitlines())[:300]
        raise LayerMissing(
            f"process tree: not in the cgroup {membership} (the kernel says {shown})"
        )
    return True


def _no_new_privs() -> int:
    """``prctl(PR_GET_NO_NEW_PRIVS)``: 1 when set, 0 when not, -1 when it cannot be asked."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return int(libc.prctl(39, 0, 0, 0, 0))  # PR_GET_NO_NEW_PRIVS


def check_layers(promise: Promise) -> List[str]:
    """Read the kernel's view of this process and judge it; the receipt, or ``LayerMissing``."""
    with open("/proc/self/status") as handle:
        status = parse_status(handle.read())
    if "NoNewPrivs" not in status:  # not shown by every kernel (gVisor): ask it directly
        status["NoNewPrivs"] = str(_no_new_privs())
    kinds = tuple(kind for kind, _ in promise.other_namespaces)
    return judge(promise, status, namespace_inodes(kinds))
