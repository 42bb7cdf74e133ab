"""Broker side of seccomp user notification: learn denied calls by name.

A target cannot be trusted to say which syscall it was refused (and Python
cannot learn it from SIGSYS anyway), so the policy filter's denials go to
the broker as ``SECCOMP_RET_USER_NOTIF``: the target blocks in the kernel, a
thread here receives the syscall number and arguments from the listener fd,
records them, and answers EPERM (or kills the target). About 40 us a call.

pyseccomp does not expose every piece we need, so the ioctls are issued
directly with the struct layouts of ``linux/seccomp.h``. ctypes releases the
GIL during ``ioctl``, so a slow answer never stalls the broker.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import select
import signal
import threading

from pytest_isolate.policy.decode import Violation, meaningful_args
from pytest_isolate.policy.plan import (
    SECCOMP_IOCTL_NOTIF_ID_VALID,
    SECCOMP_IOCTL_NOTIF_RECV,
    SECCOMP_IOCTL_NOTIF_SEND,
    denial_label,
)
from pytest_isolate.policy.spec import PolicySpec

SECCOMP_GET_NOTIF_SIZES = 3
#: Distinct (syscall, args) kinds kept per target; a flood of distinct
#: arguments folds into one entry per syscall instead of growing memory.
MAX_DISTINCT_VIOLATIONS = 100
_POLL_INTERVAL_MS = 100
_MAX_DRAINED = 1000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_libc.ioctl.restype = ctypes.c_int
_libc.syscall.restype = ctypes.c_long


class SeccompData(ctypes.Structure):
    _fields_ = [
        ("nr", ctypes.c_int32),
        ("arch", ctypes.c_uint32),
        ("instruction_pointer", ctypes.c_uint64),
        ("args", ctypes.c_uint64 * 6),
    ]


class SeccompNotif(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("data", SeccompData),
    ]


class SeccompNotifResp(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint64),
        ("val", ctypes.c_int64),
        ("error", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
    ]


class SeccompNotifSizes(ctypes.Structure):
    _fields_ = [
        ("seccomp_notif", ctypes.c_uint16),
        ("seccomp_notif_resp", ctypes.c_uint16),
        ("seccomp_data", ctypes.c_uint16),
    ]


def notif_sizes() -> SeccompNotifSizes:
    """The kernel's struct sizes (``SECCOMP_GET_NOTIF_SIZES``); OSError when unsupported."""
    import pyseccomp

    sizes = SeccompNotifSizes()
    nr = int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "seccomp"))
    if (
        _libc.syscall(
            ctypes.c_long(nr), ctypes.c_ulong(SECCOMP_GET_NOTIF_SIZES), 0, ctypes.byref(sizes)
        )
        < 0
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(GET_NOTIF_SIZES): {os.strerror(err)}")
    return sizes


def _ioctl(fd: int, request: int, buffer: ctypes._CData) -> None:
    if _libc.ioctl(fd, request, ctypes.byref(buffer)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@functools.lru_cache(maxsize=1024)
def syscall_name(arch: int, number: int) -> str:
    """Name of syscall ``number`` on audit arch ``arch``; ``syscall_<n>`` if unknown."""
    import pyseccomp

    try:
        name = pyseccomp.resolve_syscall(arch, number)
    except (ValueError, OSError):
        return f"syscall_{number}"
    return name.decode() if isinstance(name, bytes) else str(name)


class ViolationMonitor:
    """Services one target's listener fd in a thread and records what it was denied.

    Takes ownership of ``listener_fd``. Call ``stop()`` before reaping the
    target: with ``on_violation="kill"`` the monitor signals ``target_pid``,
    which must not have been reaped (and its pid reused) by then.
    """

    def __init__(self, listener_fd: int, spec: PolicySpec, target_pid: int | None = None) -> None:
        self._fd: int | None = listener_fd
        self._spec = spec
        self._target_pid = target_pid
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, tuple[int, ...]], list[int]] = {}
        #: Set when servicing failed unexpectedly (the violations may be incomplete).
        self.error: OSError | None = None
        sizes = notif_sizes()
        # A newer kernel may have larger structs; the ioctl still copies ours.
        self._recv_size = max(int(sizes.seccomp_notif), ctypes.sizeof(SeccompNotif))

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("ViolationMonitor.start() called twice")
        self._thread = threading.Thread(
            target=self._serve, name="pytest-isolate-seccomp-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> list[Violation]:
        """Stop servicing, answer what is still pending, close the fd, return the violations."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        if self._fd is not None:
            for _ in range(_MAX_DRAINED):  # bounded: the target may still be looping
                if self.error is not None or self._ready(timeout_ms=0) != "notification":
                    break
                self._handle_one_safely()
            os.close(self._fd)
            self._fd = None
        return self.violations()

    def violations(self) -> list[Violation]:
        with self._lock:
            return [
                Violation(
                    syscall=syscall,
                    args=args,
                    group=denial_label(self._spec, syscall, args),
                    count=count,
                    killed=bool(killed),
                )
                for (syscall, args), (count, killed) in self._counts.items()
            ]

    def _serve(self) -> None:
        while not self._stopping.is_set() and self.error is None:
            state = self._ready(_POLL_INTERVAL_MS)
            if state == "notification":
                self._handle_one_safely()
            elif state == "gone":
                return

    def _handle_one_safely(self) -> None:
        """An unexpected ioctl failure ends servicing; closing the fd then makes
        the target's pending calls fail with ENOSYS instead of hanging."""
        try:
            self._handle_one()
        except OSError as exc:
            self.error = exc

    def _ready(self, timeout_ms: int) -> str:
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        for _fd, events in poller.poll(timeout_ms):
            if events & select.POLLIN:
                return "notification"
            if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return "gone"  # every task using the filter has exited
        return "idle"

    def _handle_one(self) -> None:
        assert self._fd is not None
        buffer = ctypes.create_string_buffer(self._recv_size)
        try:
            _ioctl(self._fd, SECCOMP_IOCTL_NOTIF_RECV, buffer)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINTR):
                return  # the caller died before we looked, or a signal: nothing to answer
            raise
        notif = SeccompNotif.from_buffer_copy(buffer.raw[: ctypes.sizeof(SeccompNotif)])
        syscall = syscall_name(notif.data.arch, notif.data.nr)
        args = meaningful_args(syscall, tuple(int(a) for a in notif.data.args))
        kill = self._spec.on_violation == "kill"
        if kill:
            self._kill(notif)
        self._record(syscall, args, kill)
        self._answer_eperm(notif.id)

    def _kill(self, notif: SeccompNotif) -> None:
        """Kill while the caller is still blocked in the notification (its pid cannot be reused)."""
        assert self._fd is not None
        cookie = ctypes.c_uint64(notif.id)
        try:
            _ioctl(self._fd, SECCOMP_IOCTL_NOTIF_ID_VALID, cookie)
            os.kill(int(notif.pid), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass  # already gone
        if self._target_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._target_pid, signal.SIGKILL)

    def _answer_eperm(self, notification_id: int) -> None:
        assert self._fd is not None
        response = SeccompNotifResp(id=notification_id, val=0, error=-errno.EPERM, flags=0)
        try:
            _ioctl(self._fd, SECCOMP_IOCTL_NOTIF_SEND, response)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # ENOENT: the caller died meanwhile
                raise

    def _record(self, syscall: str, args: tuple[int, ...], killed: bool) -> None:
        with self._lock:
            key = (syscall, args)
            if key not in self._counts and len(self._counts) >= MAX_DISTINCT_VIOLATIONS:
                key = (syscall, ())
            entry = self._counts.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] |= int(killed)
