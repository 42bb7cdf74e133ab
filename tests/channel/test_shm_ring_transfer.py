"""The ring between two real processes: a forked writer, and the reader in this process.

Real anonymous shared memory, real eventfds, real forks: the writer runs in
a child exactly as in a forked target, the reader here as in the broker.
"""

from __future__ import annotations

import os
import select
import struct
import time
from collections.abc import Callable, Iterator

import pytest

from pytest_isolate.wire.frames import FrameDecoder, encode_frame
from pytest_isolate.wire.shm import (
    HEAD_OFFSET,
    TAIL_OFFSET,
    RingReader,
    ShmRing,
    load_counter,
    store_counter,
)


@pytest.fixture
def ring() -> Iterator[ShmRing]:
    made = ShmRing(capacity=4096)
    yield made
    made.close()


def fork_child(body: Callable[[], None]) -> int:
    """Run ``body`` in a forked child that exits 0 on success, 1 on any error."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            body()
            code = 0
        finally:
            os._exit(code)
    return pid


def exit_code(pid: int) -> int:
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def read_until(reader: RingReader, count: int, seconds: float = 10.0) -> bytes:
    """What the reader copies out until ``count`` bytes arrived, waiting on the eventfd."""
    poller = select.poll()
    poller.register(reader.fileno(), select.POLLIN)
    got = bytearray()
    deadline = time.monotonic() + seconds
    while len(got) < count and time.monotonic() < deadline:
        poller.poll(100)
        got += reader.read_available()
    return bytes(got)


def test_frames_written_in_a_child_arrive_whole_and_in_order(ring: ShmRing) -> None:
    messages = [{"type": "report", "n": n, "text": "x" * (n * 37)} for n in range(60)]
    data = b"".join(encode_frame(m) for m in messages)
    pid = fork_child(lambda: ring.writer().sendall(data))
    got = read_until(ring.reader(), len(data))
    assert exit_code(pid) == 0
    assert list(FrameDecoder().feed(got)) == messages


def test_a_frame_far_larger_than_the_ring_streams_through_it(ring: ShmRing) -> None:
    message = {"type": "report", "blob": "y" * (3 * 1024 * 1024)}
    data = encode_frame(message)
    pid = fork_child(lambda: ring.writer().sendall(data))
    got = read_until(ring.reader(), len(data), seconds=30)
    assert exit_code(pid) == 0
    assert list(FrameDecoder().feed(got)) == [message]


def test_a_full_ring_holds_the_writer_until_the_reader_makes_room(ring: ShmRing) -> None:
    done_read, done_write = os.pipe()

    def write_too_much() -> None:
        ring.writer().sendall(b"z" * (ring.capacity + 100))
        os.write(done_write, b"!")

    pid = fork_child(write_too_much)
    os.close(done_write)
    try:
        assert select.select([done_read], [], [], 0.3)[0] == []  # blocked: the ring is full
        got = read_until(ring.reader(), ring.capacity + 100)
        assert select.select([done_read], [], [], 5)[0] == [done_read]
        assert got == b"z" * (ring.capacity + 100)
    finally:
        os.close(done_read)
    assert exit_code(pid) == 0


def test_the_readers_copy_is_not_changed_by_a_writer_mutating_the_frame_later(
    ring: ShmRing,
) -> None:
    original = encode_frame({"type": "report", "text": "original"})
    go_read, go_write = os.pipe()

    def write_then_mutate() -> None:
        ring.writer().sendall(original)
        os.read(go_read, 1)  # the reader has taken its copy
        ring.region[128 : 128 + len(original)] = original.replace(b"original", b"mutated!")

    pid = fork_child(write_then_mutate)
    reader = ring.reader()
    copy = read_until(reader, len(original))
    os.write(go_write, b"!")
    assert exit_code(pid) == 0
    os.close(go_read)
    os.close(go_write)
    assert ring.region[128 : 128 + len(original)] != original  # the region did change
    assert copy == original
    assert reader.read_available() == b""  # and nothing new was published


def test_the_reader_never_trusts_the_tail_word_in_shared_memory(ring: ShmRing) -> None:
    data = encode_frame({"type": "report", "n": 1})

    def scribble_tail_then_write() -> None:
        struct.pack_into("<Q", ring.region, TAIL_OFFSET, 0)  # harmless to the writer here
        ring.writer().sendall(data)
        struct.pack_into("<Q", ring.region, TAIL_OFFSET, 2**64 - 1)

    pid = fork_child(scribble_tail_then_write)
    assert exit_code(pid) == 0
    reader = ring.reader()
    assert reader.read_available() == data
    assert reader.read_available() == b""


def test_a_saturated_eventfd_never_blocks_the_reader(ring: ShmRing) -> None:
    saturated = (2**64 - 2).to_bytes(8, "little")

    def saturate_both() -> None:
        os.write(ring.space_ready, saturated)
        os.write(ring.data_ready, saturated)
        ring.writer().sendall(b"abc")

    pid = fork_child(saturate_both)
    assert exit_code(pid) == 0
    started = time.monotonic()
    assert ring.reader().read_available() == b"abc"  # writes to space_ready: EAGAIN, ignored
    assert time.monotonic() - started < 1.0


#: Every value the writer stores is a multiple of this: a load that saw part of a
#: store, or the zero-fill ``struct.pack_into`` does first, is not.
STRIDE = 0x0101_0101_01
STORES = 300_000


def test_a_counter_is_never_loaded_half_stored(ring: ShmRing) -> None:
    """The target stores head while the broker loads it: every load is a value once stored.

    With ``struct.pack_into`` and ``unpack_from`` the broker saw 0 here within
    a few thousand loads, and failed an honest flooding test with "moved the
    shared ring's write index backwards".
    """

    def store_rising() -> None:
        for step in range(1, STORES + 1):
            store_counter(ring.region, HEAD_OFFSET, step * STRIDE)

    writer = fork_child(store_rising)
    loads, torn, last = 0, [], 0
    while True:
        finished = os.waitpid(writer, os.WNOHANG)[0] == writer
        value = load_counter(ring.region, HEAD_OFFSET)
        loads += 1
        if value % STRIDE or value < last:
            torn.append(value)
        last = value
        if finished:
            break
    assert torn == []
    assert last == STORES * STRIDE and loads > 1000
