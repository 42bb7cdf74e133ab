"""A running guest: QEMU started with the command's stdio on a socket.

This is the thin imperative shell: it starts QEMU (booting, or restoring a
snapshot of the shape) with a parent-death signal, answers the init's
checkpoint, and owns the socketpairs (channel, console, QMP) and the QEMU
process until ``kill``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pytest_isolate.vm import snapshot
from pytest_isolate.vm.checkpoint_handshake import CHECKPOINT, launch_payload
from pytest_isolate.vm.console import ConsoleBuffer, without_panic_trace
from pytest_isolate.vm.errors import BootFailed, BootTimeout
from pytest_isolate.vm.guest_config import VMConfig
from pytest_isolate.vm.launch import Launch, resolve
from pytest_isolate.vm.progress import report
from pytest_isolate.vm.qemu_args import qemu_argv
from pytest_isolate.vm.qmp import QmpClient, QmpError

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn for QEMU: SIGKILL when the broker's forking thread dies."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def apply() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the broker died before prctl took effect
            os._exit(70)

    return apply


class Guest:
    """One QEMU process running ``VMConfig.command`` as the guest's PID 1.

    ``channel`` is a connected stream socket: bytes written to it arrive on
    the command's stdin, the command's stdout arrives on it. Write nothing
    to it before ``wait_ready`` returns: until then it carries the init's
    checkpoint handshake. Boot problems surface from ``wait_ready``;
    ``kill`` always ends QEMU and frees everything and may be called any
    number of times.

    Closing the host end of ``channel`` (even only ``shutdown(SHUT_WR)``)
    makes QEMU drop the connection: the command reads EOF on stdin, and
    nothing it writes afterwards reaches the host. When the command exits
    the guest kernel panics (PID 1 died) and ``-no-reboot`` ends QEMU with
    status 0; the command's own exit status is not carried across.

    With ``snapshots=True`` a guest of a shape seen before is restored from
    its snapshot instead of booted; the first boot of a shape saves one at
    the init's checkpoint. ``snapshot_note`` says when that did not work (the
    guest then simply boots); ``timings`` holds what the snapshot steps cost.

    QEMU gets ``PR_SET_PDEATHSIG``: it dies with the *thread* that started
    it, so start guests from a thread that lives as long as they do.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        channel: socket.socket,
        console: ConsoleBuffer,
        launch: Launch,
        boot_timeout: float,
        started_at: float,
        qmp: QmpClient | None = None,
    ) -> None:
        self._process = process
        self.channel = channel
        self._console = console
        self._launch = launch
        self.accel = launch.plan.accel
        self.accel_reason = launch.accel_reason
        self.pid = process.pid
        self.boot_timeout = boot_timeout
        self.started_at = started_at
        self._qmp = qmp
        #: Where to save a snapshot at the checkpoint (None: do not save).
        self._save_to: Path | None = None
        self._progress: Callable[[str], None] | None = None
        #: True once the launch payload went out (a restored guest only waits for it).
        self._handed_over = False
        self.restored = False
        self.snapshot_note: str | None = None
        self.timings: dict[str, float] = {}
        self._killed = False
        self._lock = threading.Lock()

    @classmethod
    def start(
        cls,
        config: VMConfig,
        progress: Callable[[str], None] | None = None,
        *,
        snapshots: bool = False,
    ) -> Guest:
        """Start QEMU for ``config``; returns as soon as QEMU runs (or has restored)."""
        launch = resolve(config, progress)
        if not snapshots:
            return cls._spawn(launch, config.boot_timeout)
        path = Path(launch.snapshot_file())
        note = None
        if path.exists():
            try:
                return cls._restore(launch, config.boot_timeout, path, progress)
            except snapshot.SnapshotFailed as exc:
                snapshot.discard(path)
                note = f"the saved guest could not be restored ({exc}); booted normally instead"
                report(progress, note)
        guest = cls._spawn(launch, config.boot_timeout, with_qmp=True)
        guest._save_to = path
        guest._progress = progress
        guest.snapshot_note = note
        return guest

    @classmethod
    def _restore(
        cls,
        launch: Launch,
        boot_timeout: float,
        path: Path,
        progress: Callable[[str], None] | None,
    ) -> Guest:
        started = time.monotonic()
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise snapshot.SnapshotFailed(f"cannot open {path}: {exc.strerror}") from None
        try:
            guest = cls._spawn(launch, boot_timeout, with_qmp=True, incoming_fd=fd)
        finally:
            os.close(fd)
        try:
            assert guest._qmp is not None
            guest._qmp.handshake(timeout=10.0)
            snapshot.wait_restored(guest._qmp, lambda: guest._process.poll() is not None)
        except (snapshot.SnapshotFailed, QmpError) as exc:
            exited = guest.wait(2.0) is not None
            if exited:
                guest._console.wait_closed(1.0)
            qemu_said = guest.console_tail(2048).strip().splitlines()[-1:]
            guest.kill()
            if exited and qemu_said:  # QEMU's own words say it best
                raise snapshot.SnapshotFailed(qemu_said[0]) from None
            raise snapshot.SnapshotFailed(str(exc)) from None
        except BaseException:
            guest.kill()
            raise
        guest.restored = True
        guest.timings["restore"] = time.monotonic() - started
        snapshot.mark_used(path)
        report(progress, f"restored the saved guest in {guest.timings['restore']:.2f} s")
        guest._close_qmp()
        return guest

    @classmethod
    def _spawn(
        cls,
        launch: Launch,
        boot_timeout: float,
        with_qmp: bool = False,
        incoming_fd: int | None = None,
    ) -> Guest:
        channel_host, channel_qemu = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        console_host, console_qemu = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        qmp_host, qmp_qemu = (
            socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) if with_qmp else (None, None)
        )
        ours = [sock for sock in (channel_host, console_host, qmp_host) if sock is not None]
        theirs = [sock for sock in (channel_qemu, console_qemu, qmp_qemu) if sock is not None]
        plan = replace(
            launch.plan,
            channel_fd=channel_qemu.fileno(),
            console_fd=console_qemu.fileno(),
            qmp_fd=qmp_qemu.fileno() if qmp_qemu is not None else None,
            incoming_fd=incoming_fd,
        )
        pass_fds = [sock.fileno() for sock in theirs]
        if incoming_fd is not None:
            pass_fds.append(incoming_fd)
        started_at = time.monotonic()
        try:
            process = subprocess.Popen(
                qemu_argv(plan),
                stdin=subprocess.DEVNULL,
                stdout=console_qemu.fileno(),
                stderr=console_qemu.fileno(),
                pass_fds=pass_fds,
                preexec_fn=_die_with_parent(os.getpid()),
                start_new_session=True,
            )
        except BaseException:
            for sock in ours:
                sock.close()
            raise
        finally:
            for sock in theirs:
                sock.close()
        console = ConsoleBuffer(console_host)
        qmp = QmpClient(qmp_host) if qmp_host is not None else None
        return cls(process, channel_host, console, launch, boot_timeout, started_at, qmp)

    def console_tail(self, max_bytes: int = 8192) -> str:
        """The last ``max_bytes`` of the guest console (kernel log, command stderr, QEMU errors)."""
        return self._console.tail(max_bytes)

    def wait_ready(self, timeout: float | None = None) -> float:
        """Block until the command's first byte is readable on the channel.

        On the way, answer the init's checkpoint with the launch payload
        (saving a snapshot first when asked to). Nothing of the command's
        output is consumed. Returns seconds since QEMU started. Raises
        ``BootFailed`` if QEMU exits first, ``BootTimeout`` (and kills the
        guest) after ``timeout`` (default: the config's ``boot_timeout``).
        """
        limit = self.boot_timeout if timeout is None else timeout
        deadline = self.started_at + limit
        if not self._handed_over:
            if not self.restored:
                self._await_checkpoint(deadline, limit)
                if self._save_to is not None:
                    self._save(self._save_to)
            self._hand_over()
        while True:
            self._wait_readable(deadline, limit)
            if self.channel.recv(1, socket.MSG_PEEK):
                return time.monotonic() - self.started_at
            self._raise_boot_failed()

    def _wait_readable(self, deadline: float, limit: float) -> None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = self.console_tail()
                self.kill()
                raise BootTimeout(
                    f"the guest did not start its command within {limit:.0f} s "
                    f"(accel {self.accel}); raise boot_timeout, or check the console below",
                    tail,
                )
            readable, _, _ = select.select([self.channel], [], [], min(remaining, 0.5))
            if readable:
                return
            if self._process.poll() is not None:
                self._raise_boot_failed()

    def _await_checkpoint(self, deadline: float, limit: float) -> None:
        """Read the init's ``CHECKPOINT`` line; anything else is a failed boot."""
        said = b""
        while len(said) < len(CHECKPOINT):
            self._wait_readable(deadline, limit)
            chunk = self.channel.recv(len(CHECKPOINT) - len(said))
            if not chunk:
                self._raise_boot_failed()
            said += chunk
            if not CHECKPOINT.startswith(said):
                tail = self.console_tail()
                self.kill()
                raise BootFailed(
                    f"the guest's init sent {said!r} instead of its checkpoint; "
                    "the initramfs may be stale (delete the pytest-isolate VM cache)",
                    tail,
                )

    def _hand_over(self) -> None:
        with contextlib.suppress(OSError):  # a dead guest is reported by the wait that follows
            self.channel.sendall(
                launch_payload(self._launch.script, etc_source=self._launch.etc_source)
            )
        self._handed_over = True

    def _save(self, path: Path) -> None:
        """Snapshot the guest at its checkpoint; a failure is noted, never fatal."""
        assert self._qmp is not None
        try:
            self._qmp.handshake(timeout=10.0)
            saved = snapshot.save(self._qmp, path)
        except (snapshot.SnapshotFailed, QmpError, OSError) as exc:
            self.snapshot_note = (
                f"the guest could not be saved for reuse ({exc}); guests of this shape boot "
                "normally (slower)"
            )
        else:
            self.timings["save"] = saved.seconds
            self.timings["snapshot_bytes"] = float(saved.size)
            mib = saved.size / (1 << 20)
            report(
                self._progress,
                f"saved the guest for later starts ({saved.seconds:.2f} s, {mib:.0f} MiB)",
            )
            with contextlib.suppress(OSError):
                snapshot.prune()
        self._close_qmp()

    def _close_qmp(self) -> None:
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None

    def _raise_boot_failed(self) -> None:
        code = self._process.wait()
        self._console.wait_closed(1.0)
        tail = without_panic_trace(self.console_tail(65536))[-8192:]
        self.kill()
        raise BootFailed(
            f"the guest ended (QEMU exit status {code}) before its command wrote anything; "
            "the console below usually says why",
            tail,
        )

    def wait(self, timeout: float | None = None) -> int | None:
        """QEMU's exit status, or None if it is still running after ``timeout``."""
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def end_process(self) -> None:
        """SIGKILL QEMU and leave its sockets open: a thread reading them sees their end."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL QEMU, reap it and close its sockets. Idempotent."""
        with self._lock:
            if self._killed:
                return
            self._killed = True
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self.channel.close()
        self._console.close()
        self._close_qmp()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
