"""Seccomp user notification: answer denied calls, count them by number, name them.

A target cannot be trusted to say which syscall it was refused (and Python
cannot learn it from SIGSYS anyway), so the policy filter's denials go to a
supervisor as ``SECCOMP_RET_USER_NOTIF``: the target blocks in the kernel,
the supervisor receives the syscall number and arguments from the listener
fd, records them, and answers EPERM (or kills the target). About 40 us a
call. The supervisor is the broker for a forked target (``ViolationMonitor``,
a thread) and the agent inside a container or VM (``NotificationServicer``
in its poll loop, numbers only); names are always given by the broker
(``decode_violations``).

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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Dict, List, Tuple

from pytest_isolate.policy.decode import Violation, meaningful_args
from pytest_isolate.policy.filter_plan import (
    SECCOMP_IOCTL_NOTIF_ID_VALID,
    SECCOMP_IOCTL_NOTIF_RECV,
    SECCOMP_IOCTL_NOTIF_SEND,
    denial_label,
)
from pytest_isolate.policy.policy_spec import PolicySpec
from pytest_isolate.threads import start_without_signals

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


def seccomp_syscall_number() -> int:
    """This architecture's number of ``seccomp(2)`` (libseccomp, so the host's)."""
    import pyseccomp

    return int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "seccomp"))


def notif_sizes(seccomp_nr: int | None = None) -> SeccompNotifSizes:
    """The kernel's struct sizes (``SECCOMP_GET_NOTIF_SIZES``); OSError when unsupported.

    ``seccomp_nr`` is given inside a target, which may lack libseccomp.
    """
    nr = seccomp_syscall_number() if seccomp_nr is None else seccomp_nr
    sizes = SeccompNotifSizes()
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


@dataclass(frozen=True)
class RawViolation:
    """A denied call as the kernel reported it: numbers only, named later by the broker."""

    arch: int
    nr: int
    args: Tuple[int, ...]
    count: int
    killed: bool


class NotificationServicer:
    """Answers one listener's notifications (EPERM, or a kill) and counts them by raw call.

    Owns ``listener_fd``. Needs only ctypes and the kernel, no libseccomp:
    an agent inside a container or VM runs it in its own poll loop (a fork
    server must not hold a thread across ``fork``), and the broker runs it
    in a thread (``ViolationMonitor``). Names are given by the broker
    (``decode_violations``), which does not take the target's word for them.
    """

    def __init__(
        self,
        listener_fd: int,
        kill: bool,
        target_pid: int | None = None,
        seccomp_nr: int | None = None,
    ) -> None:
        self._fd: int | None = listener_fd
        self._kill_on_violation = kill
        self._target_pid = target_pid
        self._counts: Dict[Tuple[int, int, Tuple[int, ...]], List[int]] = {}
        self._lock = threading.Lock()
        #: Set when servicing failed unexpectedly (the violations may be incomplete).
        self.error: OSError | None = None
        sizes = notif_sizes(seccomp_nr)
        # A newer kernel may have larger structs; the ioctl still copies ours.
        self._recv_size = max(int(sizes.seccomp_notif), ctypes.sizeof(SeccompNotif))

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the listener is closed")
        return self._fd

    def ready(self, timeout_ms: int) -> str:
        """ "notification", "gone" (every task using the filter exited) or "idle"."""
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        for _fd, events in poller.poll(timeout_ms):
            if events & select.POLLIN:
                return "notification"
            if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return "gone"
        return "idle"

    def handle_one(self) -> None:
        """Receive and answer one notification. An unexpected ioctl failure ends
        servicing; closing the fd then makes the target's pending calls fail
        with ENOSYS instead of hanging."""
        if self.error is not None or self._fd is None:
            return
        try:
            self._handle_one()
        except OSError as exc:
            self.error = exc

    def close(self) -> None:
        """Answer what is still pending (bounded: the target may still loop), close the fd."""
        if self._fd is None:
            return
        for _ in range(_MAX_DRAINED):
            if self.error is not None or self.ready(timeout_ms=0) != "notification":
                break
            self.handle_one()
        os.close(self._fd)
        self._fd = None

    def records(self) -> List[RawViolation]:
        with self._lock:
            return [
                RawViolation(arch, nr, args, count, bool(killed))
                for (arch, nr, args), (count, killed) in self._counts.items()
            ]

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
        if self._kill_on_violation:
            self._kill(notif)
        self._record(int(notif.data.arch), int(notif.data.nr), tuple(notif.data.args))
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

    def _record(self, arch: int, nr: int, args: Tuple[int, ...]) -> None:
        with self._lock:
            key = (arch, nr, args)
            if key not in self._counts and len(self._counts) >= MAX_DISTINCT_VIOLATIONS:
                key = (arch, nr, ())
            entry = self._counts.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] |= int(self._kill_on_violation)


def decode_violations(records: Iterable[RawViolation], spec: PolicySpec) -> List[Violation]:
    """Name raw denials (syscall, meaningful arguments, the ``@group`` that denied them).

    Raw records differing only in arguments that do not matter (a buffer
    address) fold into one violation.
    """
    merged: Dict[Tuple[str, Tuple[int, ...]], List[int]] = {}
    for record in records:
        syscall = syscall_name(record.arch, record.nr)
        args = meaningful_args(syscall, record.args) if record.args else ()
        entry = merged.setdefault((syscall, args), [0, 0])
        entry[0] += record.count
        entry[1] |= int(record.killed)
    return [
        Violation(
            syscall=syscall,
            args=args,
            group=denial_label(spec, syscall, args),
            count=count,
            killed=bool(killed),
        )
        for (syscall, args), (count, killed) in merged.items()
    ]


class ViolationMonitor:
    """Services one target's listener fd in a thread and records what it was denied.

    Takes ownership of ``listener_fd``. Call ``stop()`` before reaping the
    target: with ``on_violation="kill"`` the monitor signals ``target_pid``,
    which must not have been reaped (and its pid reused) by then.
    """

    def __init__(self, listener_fd: int, spec: PolicySpec, target_pid: int | None = None) -> None:
        self._spec = spec
        self._servicer = NotificationServicer(
            listener_fd, kill=spec.on_violation == "kill", target_pid=target_pid
        )
        self._stopping = threading.Event()
        self._served: threading.Event | None = None

    @property
    def error(self) -> OSError | None:
        return self._servicer.error

    def start(self) -> None:
        """Service the listener in a thread of its own (``threads.start_without_signals``: not
        waited for, so the broker reads the test's frames at once); ``stop`` waits for its end.
        """
        if self._served is not None:
            raise RuntimeError("ViolationMonitor.start() called twice")
        self._served = threading.Event()
        start_without_signals(self._serve_then_say)

    def stop(self) -> list[Violation]:
        """Stop servicing, answer what is still pending, close the fd, return the violations."""
        self._stopping.set()
        if self._served is not None:
            self._served.wait()
        self._servicer.close()
        return self.violations()

    def _serve_then_say(self) -> None:
        assert self._served is not None
        try:
            self._serve()
        finally:
            self._served.set()

    def violations(self) -> list[Violation]:
        return decode_violations(self._servicer.records(), self._spec)

    def _serve(self) -> None:
        servicer = self._servicer
        while not self._stopping.is_set() and servicer.error is None:
            state = servicer.ready(_POLL_INTERVAL_MS)
            if state == "notification":
                servicer.handle_one()
            elif state == "gone":
                return
