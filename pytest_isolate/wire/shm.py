"""A shared-memory ring between the broker and one forked target: the ``shm`` channel.

The broker maps an anonymous shared region and makes two eventfds *before*
the fork, so the child inherits all three and no name or file exists that
anyone else could open. The target writes the same length-prefixed frames it
would write on a socket, as a byte stream, so a frame bigger than the ring
simply streams through it; when the ring is full the writer waits for the
broker to make room (backpressure).

Layout of the region (little-endian 64-bit counters of bytes ever written
and ever read, each on its own cache line, then the data)::

    [0, 8)      head: written by the target
    [64, 72)    tail: written by the broker, for the writer's information only
    [128, ...)  capacity bytes of data, position = counter % capacity

The target is hostile and shares the region, so the reader:

- keeps its own tail and its own capacity and never reads them back from
  shared memory (the target may scribble over both words);
- reads ``head`` once, checks it against its private tail and capacity with
  :func:`claimed_span`, copies the claimed bytes out once, and hands only
  that private copy on; nothing in the region is read again after a check;
- never blocks: its eventfds are non-blocking (a target that saturates an
  eventfd counter cannot make the broker's ``write`` wait), and the broker
  polls the data eventfd beside the target's pidfd and its clock, so a
  target that stops signalling, or signals without data, only costs it time.

Ordering: the writer stores data, then head, then writes the eventfd; the
reader reads the eventfd, then head, then data. The eventfd system calls
order the stores and loads; after the target has exited, its stores are
visible anyway (the broker's final drain).

Each counter is stored and loaded as one 8-byte word (``store_counter``,
``load_counter``), because the other side may read it at any moment.
``struct.pack_into`` zero-fills its field, then writes it byte by byte, and
``unpack_from`` reads byte by byte: a reader could see 0, or half of each
value, and take an honest target's head for one moved backwards.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import struct

from pytest_isolate.wire.frames import ProtocolViolation

_COUNTER = struct.Struct("<Q")
HEAD_OFFSET = 0
TAIL_OFFSET = 64
DATA_OFFSET = 128
DEFAULT_CAPACITY = 1024 * 1024
# os.eventfd and its flags arrived in Python 3.10; the values are Linux's own.
_EVENTFD_FLAGS = getattr(os, "EFD_NONBLOCK", 0o4000) | getattr(os, "EFD_CLOEXEC", 0o2000000)


def _eventfd(flags: int) -> int:
    """A new eventfd (counter 0): ``os.eventfd`` where it exists, libc's elsewhere."""
    if hasattr(os, "eventfd"):
        return int(os.eventfd(0, flags))
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = int(libc.eventfd(ctypes.c_uint(0), ctypes.c_int(flags)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"eventfd: {os.strerror(err)}")
    return fd


_ONE = (1).to_bytes(8, "little")


def load_counter(region: mmap.mmap, offset: int) -> int:
    """One counter, loaded at once: a slice of the map is one ``memcpy`` of the aligned word."""
    value: int = _COUNTER.unpack(region[offset : offset + _COUNTER.size])[0]
    return value


def store_counter(region: mmap.mmap, offset: int, value: int) -> None:
    """One counter, stored at once: the bytes are made first, then copied in one ``memcpy``."""
    region[offset : offset + _COUNTER.size] = _COUNTER.pack(value)


def claimed_span(head: int, tail: int, capacity: int) -> int:
    """How many unread bytes a ``head`` read from shared memory claims; raises if impossible.

    ``tail`` and ``capacity`` are the reader's private values, never re-read
    from the region. Pure, so the bounds rule is table-tested on its own.
    """
    if head < tail:
        raise ProtocolViolation(f"moved the shared ring's write index backwards ({head} < {tail})")
    span = head - tail
    if span > capacity:
        raise ProtocolViolation(f"claimed {span} unread bytes in a shared ring of {capacity} bytes")
    return span


def ring_slices(position: int, length: int, capacity: int) -> list[tuple[int, int]]:
    """Data-area ``(start, end)`` offsets of ``length`` bytes from counter ``position``.

    At most two slices (the second after wrapping), each inside ``[0, capacity)``.
    """
    start = position % capacity
    first = min(length, capacity - start)
    slices = [(start, start + first)] if first else []
    if length > first:
        slices.append((0, length - first))
    return slices


class ShmRing:
    """The region and its two eventfds, made by the broker before it forks."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, not {capacity}")
        self.capacity = capacity
        # MAP_SHARED | MAP_ANONYMOUS: inherited over fork, reachable by no name.
        self.region = mmap.mmap(-1, DATA_OFFSET + capacity)
        #: the target signals "data written" on this one; the broker polls it
        self.data_ready = _eventfd(_EVENTFD_FLAGS)
        #: the broker signals "room made" on this one; a full writer waits on it
        self.space_ready = _eventfd(_EVENTFD_FLAGS)

    def child_fds(self) -> list[int]:
        """Descriptors the target must keep open (for ``close_inherited_fds``)."""
        return [self.data_ready, self.space_ready]

    def reader(self) -> RingReader:
        return RingReader(self)

    def writer(self) -> RingWriter:
        return RingWriter(self)

    def close(self) -> None:
        for fd in (self.data_ready, self.space_ready):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(BufferError, ValueError):
            self.region.close()


def _signal(fd: int) -> None:
    """Add one to an eventfd; a saturated counter (EAGAIN) is already a signal."""
    with contextlib.suppress(BlockingIOError):
        os.write(fd, _ONE)


def _clear(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        os.read(fd, 8)


class RingReader:
    """The broker's end: copy out what the target published, once, within bounds."""

    def __init__(self, ring: ShmRing) -> None:
        self._ring = ring
        self._region = ring.region
        self._capacity = ring.capacity
        self._tail = 0  # private: the shared tail word is written, never trusted
        self.bytes_read = 0

    def fileno(self) -> int:
        """The data eventfd, for ``poll`` beside the pidfd."""
        return self._ring.data_ready

    def read_available(self) -> bytes:
        """Everything published and not yet read, as a private copy (may be empty).

        Clears the notification first, so a write published after the head
        is read signals again. Raises :class:`ProtocolViolation` when the
        published head is impossible.
        """
        _clear(self._ring.data_ready)
        head = load_counter(self._region, HEAD_OFFSET)
        span = claimed_span(head, self._tail, self._capacity)
        if not span:
            return b""
        parts = [
            self._region[DATA_OFFSET + start : DATA_OFFSET + end]
            for start, end in ring_slices(self._tail, span, self._capacity)
        ]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._tail += span
        self.bytes_read += span
        store_counter(self._region, TAIL_OFFSET, self._tail)
        _signal(self._ring.space_ready)
        return data


class RingWriter:
    """The target's end: a blocking ``sendall`` that streams through the ring.

    It trusts the tail word (only the broker writes it, and the broker is
    trusted); a broker that has gone away leaves the writer waiting until
    the parent-death signal ends the target.
    """

    def __init__(self, ring: ShmRing) -> None:
        self._ring = ring
        self._region = ring.region
        self._capacity = ring.capacity
        self._head = load_counter(self._region, HEAD_OFFSET)
        self._space = select.poll()
        self._space.register(ring.space_ready, select.POLLIN)

    def _free(self) -> int:
        tail = load_counter(self._region, TAIL_OFFSET)
        return self._capacity - (self._head - tail)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            free = self._free()
            if free <= 0:
                _clear(self._ring.space_ready)
                if self._free() <= 0:  # the broker may have made room in between
                    self._space.poll()
                continue
            chunk = min(free, len(view))
            done = 0
            for start, end in ring_slices(self._head, chunk, self._capacity):
                size = end - start
                self._region[DATA_OFFSET + start : DATA_OFFSET + end] = view[done : done + size]
                done += size
            self._head += chunk
            store_counter(self._region, HEAD_OFFSET, self._head)
            _signal(self._ring.data_ready)
            view = view[chunk:]
