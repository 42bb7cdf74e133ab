"""Saved guests: one snapshot per guest shape, taken at the init's checkpoint.

Booting a guest under TCG costs seconds before its init even runs; loading
a saved one costs a fraction of that. The snapshot is taken at the
checkpoint (``handover``), before any 9p share is mounted (QEMU refuses to
migrate once one is), so it holds nothing of the host and serves every
launch of the same shape. QEMU 7.2 has no ``file:`` migration URI and
``exec:`` is barred by ``-sandbox spawn=deny``, so the stream goes to a
descriptor handed over with QMP ``getfd`` and comes back with
``-incoming fd:N``.

Snapshots live in the VM cache directory (0700, the user's own: QEMU
trusts the stream it loads), keyed by everything a restore must repeat: the
argv without descriptors and paths, the QEMU binary and its version, the
kernel, the initrd and the host CPU. They are written under a temporary name and renamed
into place, and pruned when unused for a week or beyond ``KEEP``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_isolate.vm.cache import cache_dir, file_key
from pytest_isolate.vm.errors import VMError
from pytest_isolate.vm.qmp import QmpClient, QmpError

#: Bumped when the checkpoint protocol changes: older snapshots wait for another answer.
FORMAT = "1"
PREFIX = "snapshot-"
SUFFIX = ".qemu"
#: Snapshots kept (most recently used first); each is tens of MB.
KEEP = 6
#: A snapshot unused this long is deleted (seconds).
MAX_AGE = 7 * 24 * 3600.0
#: A temporary file this old belongs to a save that died (seconds).
TEMP_AGE = 3600.0
#: Seconds a save or a restore may take before it is abandoned.
SAVE_TIMEOUT = 60.0
RESTORE_TIMEOUT = 60.0
_POLL = 0.02


class SnapshotFailed(VMError):
    """A snapshot could not be saved or loaded; the guest boots normally instead."""


@dataclass(frozen=True)
class Saved:
    """What a save cost: seconds with the guest paused, and the file's size."""

    seconds: float
    size: int


def snapshot_key(shape_argv: Sequence[str], files: Sequence[str], facts: Sequence[str]) -> str:
    """A key that changes with anything a restore depends on.

    ``files`` are keyed by path, size, mtime and inode (``file_key``): the
    QEMU binary, the kernel and the initrd. ``facts``: QEMU's version and
    the host CPU (under KVM the guest sees it).
    """
    parts = [FORMAT, *facts, *shape_argv, *(file_key(path) for path in files)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def snapshot_path(key: str) -> Path:
    return cache_dir() / f"{PREFIX}{key}{SUFFIX}"


def save(qmp: QmpClient, target: Path, timeout: float = SAVE_TIMEOUT) -> Saved:
    """Pause the guest, stream it into ``target`` (atomically), and resume it.

    The guest is resumed whatever happens, so a failed save costs only time.
    """
    started = time.monotonic()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        try:
            qmp.execute("migrate-set-parameters", {"max-bandwidth": 1 << 40})
            qmp.execute("stop")
            qmp.execute("getfd", {"fdname": "snapshot"}, fds=[fd])
            qmp.execute("migrate", {"uri": "fd:snapshot"})
            _wait_migrated(qmp, started + timeout)
        finally:
            os.close(fd)
            with contextlib.suppress(QmpError):
                qmp.execute("cont")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Saved(time.monotonic() - started, target.stat().st_size)


def _wait_migrated(qmp: QmpClient, deadline: float) -> None:
    while True:
        info = qmp.execute("query-migrate")
        status = info.get("status") if isinstance(info, dict) else None
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            words = info.get("error-desc", status)
            raise SnapshotFailed(f"QEMU could not save the guest: {words}")
        if time.monotonic() > deadline:
            with contextlib.suppress(QmpError):
                qmp.execute("migrate_cancel")
            raise SnapshotFailed("saving the guest took too long")
        time.sleep(_POLL)


def wait_restored(
    qmp: QmpClient, exited: Callable[[], bool], timeout: float = RESTORE_TIMEOUT
) -> None:
    """Block until the restored guest runs; ``SnapshotFailed`` if QEMU gives up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = qmp.execute("query-status", timeout=max(deadline - time.monotonic(), 0.1))
        except QmpError as exc:
            raise SnapshotFailed(f"QEMU could not load the snapshot ({exc})") from None
        state = status.get("status") if isinstance(status, dict) else None
        if state == "running":
            return
        if state == "paused":  # loaded: the guest was saved paused, so QEMU keeps it paused
            qmp.execute("cont")
            return
        if exited():
            raise SnapshotFailed("QEMU could not load the snapshot (it exited)")
        if time.monotonic() > deadline:
            raise SnapshotFailed("loading the snapshot took too long")
        time.sleep(_POLL)


def mark_used(path: Path) -> None:
    """Touch a snapshot on restore, so pruning keeps the ones in use."""
    with contextlib.suppress(OSError):
        os.utime(path)


def discard(path: Path) -> None:
    """Remove an unusable snapshot; what cannot be removed is left for ``prune``."""
    with contextlib.suppress(OSError):
        path.unlink()


def stale(entries: Sequence[tuple[str, float]], now: float) -> list[str]:
    """Names to delete among ``(name, mtime)`` of a cache directory's files.

    Temporary files of dead saves, snapshots unused for ``MAX_AGE``, and
    beyond the ``KEEP`` most recently used.
    """
    doomed = [
        name for name, mtime in entries if name.startswith(f".{PREFIX}") and now - mtime > TEMP_AGE
    ]
    snapshots = sorted(
        ((mtime, name) for name, mtime in entries if _is_snapshot(name)), reverse=True
    )
    for index, (mtime, name) in enumerate(snapshots):
        if index >= KEEP or now - mtime > MAX_AGE:
            doomed.append(name)
    return doomed


def _is_snapshot(name: str) -> bool:
    return name.startswith(PREFIX) and name.endswith(SUFFIX)


def prune(directory: Path | None = None) -> None:
    """Delete what ``stale`` names in the cache directory; races with other brokers are fine."""
    directory = directory or cache_dir()
    entries = []
    for entry in os.scandir(directory):
        with contextlib.suppress(OSError):
            entries.append((entry.name, entry.stat(follow_symlinks=False).st_mtime))
    for name in stale(entries, time.time()):
        with contextlib.suppress(OSError):
            os.unlink(directory / name)
