"""Name the syscall behind a baseline kill from the kernel's audit log.

Baseline denials are ``SECCOMP_RET_KILL_PROCESS`` in the kernel and never
reach the broker's listener (KILL takes precedence over USER_NOTIF), and the
target cannot be trusted to say what it did. The kernel logs every seccomp
kill (``kernel.seccomp.actions_logged`` contains ``kill_process`` by
default) as an audit record; without auditd it lands in the kernel ring
buffer, readable from ``/dev/kmsg`` by root (or anyone when
``kernel.dmesg_restrict=0``)::

    6,341,315357560,-;audit: type=1326 audit(...): ... pid=2634 comm="python" ...
        sig=31 arch=c000003e syscall=165 compat=0 ip=0x... code=0x80000000

The printk path is rate limited (by default 10 records per 5 s), so a burst of
kills can lose records: callers treat None as "unknown", never as "innocent".
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pytest_isolate.policy.notify import syscall_name

KMSG_PATH = "/dev/kmsg"
AUDIT_SECCOMP = 1326
_MAX_RECORDS = 200_000

_RECORD = re.compile(r"^\d+,(\d+),")
_QUOTED = re.compile(r'"[^"]*"')
_FIELD = re.compile(r"\b(pid|arch|syscall|sig)=([0-9a-fA-F]+)\b")


@dataclass(frozen=True)
class SeccompKill:
    sequence: int
    pid: int
    arch: int
    syscall: int


def parse_seccomp_record(record: str) -> SeccompKill | None:
    """A ``type=1326`` kill record from one /dev/kmsg line, or None for anything else."""
    sequence = _RECORD.match(record)
    if sequence is None or f"type={AUDIT_SECCOMP}" not in record:
        return None
    # comm= and exe= are chosen by the target: drop quoted values before parsing
    # so a process named "pid=1" cannot forge fields (unquoted ones are hex).
    message = _QUOTED.sub('""', record.split(";", 1)[-1])
    fields = dict(_FIELD.findall(message))
    try:
        if int(fields.get("sig", "0")) == 0:
            return None  # logged but not killed (SECCOMP_RET_LOG and friends)
        return SeccompKill(
            sequence=int(sequence.group(1)),
            pid=int(fields["pid"]),
            arch=int(fields["arch"], 16),
            syscall=int(fields["syscall"]),
        )
    except (KeyError, ValueError):
        return None


def _records() -> Iterator[str]:
    """Every record still in the ring buffer, oldest first; OSError when unreadable."""
    fd = os.open(KMSG_PATH, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        for _ in range(_MAX_RECORDS):
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:
                continue  # records were overwritten while we read: skip ahead
            yield raw.decode("utf-8", "replace")
    finally:
        os.close(fd)


def kmsg_position() -> int:
    """Sequence number the next kernel record will get; 0 when /dev/kmsg is unreadable.

    Take it before starting a target and pass it to ``find_kernel_kill`` so an
    old record for a reused pid is not mistaken for this target's.
    """
    last = -1
    try:
        for record in _records():
            match = _RECORD.match(record)
            if match:
                last = int(match.group(1))
    except OSError:
        return 0
    return last + 1


@functools.cache
def first_kmsg_position() -> int:
    """The kernel log position when this process first sandboxed a test, read once.

    Reading /dev/kmsg costs milliseconds (ten times that in a TCG guest);
    doing it per test doubled the seccomp backend's cost. Kill records are
    matched by the test's pids too, so an older start only matters if a pid
    was reused within one run.
    """
    return kmsg_position()


def find_kernel_kill(pids: set[int], since: int, timeout: float = 0.5) -> str | None:
    """The name of the syscall a seccomp filter killed one of ``pids`` for, or None.

    ``pids`` are as the initial PID namespace sees them; ``since`` is a
    ``kmsg_position()`` taken before the target started. None when /dev/kmsg
    cannot be read, the record was rate limited away, or there is none.
    """
    kill = find_kernel_kill_record(pids, since, timeout)
    return None if kill is None else syscall_name(kill.arch, kill.syscall)


def find_kernel_kill_record(pids: set[int], since: int, timeout: float = 0.5) -> SeccompKill | None:
    """The kernel's record of a seccomp kill of one of ``pids``, numbers only.

    The audit record is written by the kernel's kauditd thread, so it can
    appear a little after the target was reaped: we look again for up to
    ``timeout`` seconds. An agent inside a VM uses this on its own kernel's
    log and leaves naming the call to the broker.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            kill = _first_kill(pids, since)
        except OSError:
            return None
        if kill is not None:
            return kill
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def _first_kill(pids: set[int], since: int) -> SeccompKill | None:
    for record in _records():
        kill = parse_seccomp_record(record)
        if kill is not None and kill.sequence >= since and kill.pid in pids:
            return kill  # the first kill is the cause
    return None
