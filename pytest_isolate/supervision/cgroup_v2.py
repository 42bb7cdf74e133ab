"""The process tree on the unified cgroup hierarchy (cgroup v2), for a root broker.

Layout: ``<mount>/pytest-isolate/<broker's owner tag>/``, one leaf per broker into
which the broker moves each of its targets in turn. cgroup v2 lets only leaves hold
processes once a group hands controllers to its children ("no internal
processes"), so ``pytest-isolate/`` holds none: it exists to enable ``pids``
and ``memory`` for the leaves and to group the leaves of every broker, so a
later run finds those of brokers that died and removes them.

Root only: a non-root broker could use a subtree delegated to its user only
by first moving itself out of its own group, which in a login session it
shares with its shell; too intrusive for a test plugin. Without root, or
where the mount is read-only (most containers), ``create`` declines and the
caller falls back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pytest_isolate.liveness import owner_is_gone, owner_tag
from pytest_isolate.supervision.cgroupfs import (
    DEFAULT_PIDS_LIMIT,
    GROUP_NAME,
    cgroup2_mounts,
    members_below,
    move_into,
    read_keyed,
    read_words,
    remove_group,
    write,
)

#: Enabled for the leaves when the hierarchy offers them; ``pids`` is required.
WANTED_CONTROLLERS = ("pids", "memory")
#: How long ``empty_group`` waits for the last member to die (a process in D state may take time).
EMPTY_TIMEOUT = 5.0

#: ``cgroup.kill`` (Linux 5.14): the kernel kills every member, forks racing it included.
#: ``freeze`` (5.2): freeze, SIGKILL each member (fatal signals reach frozen tasks), thaw.
#: ``signal``: SIGKILL each member until none is left; the pids limit bounds the race.
KillMethod = Literal["kill", "freeze", "signal"]


@dataclass(frozen=True)
class Layout:
    """Where one broker's groups live under a cgroup2 mount."""

    mount: Path
    parent: Path
    leaf: Path


def layout_for(mount: Path, owner: str) -> Layout:
    """``owner`` is the broker's tag (``liveness.owner_tag``), so a later run can judge it."""
    parent = mount / GROUP_NAME
    return Layout(mount, parent, parent / owner)


def controllers_to_enable(
    available: Iterable[str], enabled: Iterable[str], wanted: Sequence[str] = WANTED_CONTROLLERS
) -> list[str]:
    """What to write to ``cgroup.subtree_control``: wanted, offered, and not on yet.

    Writing an unlisted controller fails the whole write, so only those in
    ``cgroup.controllers`` are asked for.
    """
    offered, on = set(available), set(enabled)
    return [name for name in wanted if name in offered and name not in on]


def choose_kill_method(has_kill: bool, has_freeze: bool) -> KillMethod:
    if has_kill:
        return "kill"
    return "freeze" if has_freeze else "signal"


def stale_groups(names: Iterable[str], is_gone: Callable[[str], bool] = owner_is_gone) -> list[str]:
    """Leaves named after brokers that no longer exist; a name that is no owner tag is not ours."""
    return sorted(name for name in names if is_gone(name))


def find_unified_mount(mountinfo: Path = Path("/proc/self/mountinfo")) -> Path | None:
    """The cgroup2 mount that has the ``pids`` controller, if any.

    On a hybrid host (systemd's ``/sys/fs/cgroup/unified``) cgroup2 is
    mounted but every controller is bound to v1: that hierarchy cannot bound
    a fork bomb, so it does not count.
    """
    try:
        text = mountinfo.read_text()
    except OSError:
        return None
    for mount in cgroup2_mounts(text):
        if "pids" in read_words(mount / "cgroup.controllers"):
            return mount
    return None


def _populated(group: Path) -> bool:
    """Whether any live process is in ``group`` or below it (zombies have left already)."""
    return read_keyed(group / "cgroup.events").get("populated", 0) != 0


def _try_write(path: Path, text: str) -> bool:
    try:
        write(path, text)
    except OSError:
        return False
    return True


def empty_group(group: Path, method: KillMethod, timeout: float = EMPTY_TIMEOUT) -> bool:
    """Kill everything in ``group`` and below, and wait until it is empty; False if it stays not."""
    if not _populated(group):
        return True
    by_kernel = method == "kill" and _try_write(group / "cgroup.kill", "1")
    frozen = method == "freeze" and _try_write(group / "cgroup.freeze", "1")
    deadline = time.monotonic() + timeout
    try:
        while _populated(group):
            if time.monotonic() > deadline:
                return False
            if not by_kernel:
                for member in members_below(group):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(member, signal.SIGKILL)
            time.sleep(0.001)
    finally:
        if frozen:
            _try_write(group / "cgroup.freeze", "0")
    return True


def _kill_method_of(group: Path) -> KillMethod:
    return choose_kill_method((group / "cgroup.kill").exists(), (group / "cgroup.freeze").exists())


def reap_stale_groups(parent: Path, is_gone: Callable[[str], bool] = owner_is_gone) -> None:
    """Kill what is left in, and remove, the leaves of brokers that died without ``close``."""
    try:
        names = [entry.name for entry in parent.iterdir() if entry.is_dir()]
    except OSError:
        return
    for name in stale_groups(names, is_gone):
        group = parent / name
        empty_group(group, _kill_method_of(group), timeout=2.0)
        remove_group(group)


def enable_controllers(group: Path, wanted: Sequence[str] = WANTED_CONTROLLERS) -> None:
    """Hand ``wanted`` controllers to the children of ``group`` (those it can)."""
    offered = read_words(group / "cgroup.controllers")
    names = controllers_to_enable(offered, read_words(group / "cgroup.subtree_control"), wanted)
    if names:
        write(group / "cgroup.subtree_control", " ".join(f"+{name}" for name in names))


def make_leaf(layout: Layout) -> None:
    """Create the broker's leaf with the controllers enabled on the way down.

    Another broker's ``close`` removes ``pytest-isolate/`` once it is empty,
    so the parent may vanish between our mkdirs: try again from the top.
    """
    enable_controllers(layout.mount)
    for _attempt in range(5):
        try:
            layout.parent.mkdir(exist_ok=True)
            enable_controllers(layout.parent)
            layout.leaf.mkdir(exist_ok=True)
            return
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"{layout.parent} kept disappearing")


class CgroupV2Tree:
    """One leaf per broker on the unified hierarchy, reused by each target in turn.

    ``pids.max`` bounds fork bombs while they run; ``memory.max`` (with
    ``memory.swap.max`` at 0, so the limit cannot be dodged into swap) backs
    ``mem_limit`` where RLIMIT_AS cannot see, and ``memory.events`` counts
    the OOM kills the report names.
    """

    def __init__(self, layout: Layout, kill_method: KillMethod) -> None:
        self.layout = layout
        self.leaf = layout.leaf
        self.kill_method = kill_method
        self.has_memory = (self.leaf / "memory.max").exists()
        self.has_swap = (self.leaf / "memory.swap.max").exists()
        self._pids_max: int | None = None
        self._mem_max: int | None = None

    def membership(self) -> str | None:
        """``:/pytest-isolate/PID``: the unified hierarchy's line (``0::PATH``)."""
        return ":/" + str(self.leaf.relative_to(self.layout.mount))

    @classmethod
    def create(cls, mount: Path | None = None) -> CgroupV2Tree | None:
        """The tree of this broker, or None where cgroup v2 cannot serve (the caller falls back).

        ``mount`` is the cgroup2 mount to use; by default the one
        ``/proc/self/mountinfo`` names that offers the ``pids`` controller.
        """
        if os.geteuid() != 0:
            return None
        mount = mount or find_unified_mount()
        if mount is None or "pids" not in read_words(mount / "cgroup.controllers"):
            return None
        layout = layout_for(mount, owner_tag())
        try:
            reap_stale_groups(layout.parent)
            make_leaf(layout)
        except OSError:  # read-only mount, a namespace root with processes in it, ...
            with contextlib.suppress(OSError):
                layout.parent.rmdir()  # if we made it and no other broker uses it
            return None
        if "pids" not in read_words(layout.leaf / "cgroup.controllers"):
            remove_group(layout.leaf)
            return None
        method = _kill_method_of(layout.leaf)
        # Members already there can only be an earlier broker's that had our pid.
        empty_group(layout.leaf, method)
        return cls(layout, method)

    def before_start(self, pids_limit: int | None = None, mem_limit: int | None = None) -> None:
        """In the broker: the next target's limits (each written only when it changes)."""
        limit = pids_limit or DEFAULT_PIDS_LIMIT
        if limit != self._pids_max:
            write(self.leaf / "pids.max", str(limit))
            self._pids_max = limit
        memory = mem_limit or 0
        if self.has_memory and memory != self._mem_max:
            # Lowering memory.max below what is charged reclaims (or OOM-kills
            # in an empty group: nothing); it does not fail as v1 does.
            write(self.leaf / "memory.max", str(memory) if memory else "max")
            if self.has_swap:
                write(self.leaf / "memory.swap.max", "0" if memory else "max")
            self._mem_max = memory

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer took from our leaf so far."""
        return read_keyed(self.leaf / "memory.events").get("oom_kill", 0)

    def adopt(self, pid: int) -> bool:
        """Into the leaf, before untrusted code runs."""
        return move_into(pid, [self.leaf / "cgroup.procs"], self.membership())

    def set_aside(self, pid: int) -> None:
        pass  # a target joins the leaf only when its test starts

    def holds_only(self, pid: int) -> bool:
        """Nothing but ``pid`` in the leaf or below it."""
        return not set(members_below(self.leaf)) - {pid}

    def kill(self, pid: int) -> None:
        empty_group(self.leaf, self.kill_method)

    def close(self) -> None:
        """Kill what is left, remove the leaf, and ``pytest-isolate/`` once no broker uses it."""
        empty_group(self.leaf, self.kill_method)
        remove_group(self.leaf)
        with contextlib.suppress(OSError):  # another broker's leaf is still there
            self.layout.parent.rmdir()
