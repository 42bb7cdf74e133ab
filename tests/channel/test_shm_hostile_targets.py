"""Targets that attack the shared ring: each is contained, its test fails with the reason.

One real run of a generated project with ``--isolate-channel=shm``: real
forks, real shared memory, the hostile tests reaching the ring the way an
attacker who has read our source would (walking their own stack). Every
test here reads one behaviour out of that run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from channel_helpers import FIND_CHANNEL
from project_runner import ProjectRun, run_pytest, write_project

HOSTILE = (
    FIND_CHANNEL
    + """
@isolate("process")
def test_scribbles_over_the_indices():
    ring = local("ring")
    wait_consumed(ring)
    struct.pack_into("<Q", ring.region, HEAD_OFFSET, 2**64 - 1)
    struct.pack_into("<Q", ring.region, TAIL_OFFSET, 12345)
    signal(ring.data_ready)
    time.sleep(30)

@isolate("process")
def test_moves_the_write_index_backwards():
    ring = local("ring")
    wait_consumed(ring)
    set_head(ring, head(ring) - 1)
    signal(ring.data_ready)
    time.sleep(30)

@isolate("process")
def test_claims_data_past_the_end_of_the_ring():
    ring = local("ring")
    wait_consumed(ring)
    set_head(ring, tail(ring) + ring.capacity + 1)
    signal(ring.data_ready)
    time.sleep(30)

@isolate("process")
def test_leaves_half_a_frame_and_exits():
    local("sender").channel.sendall(warning_frame("half")[:10])
    os._exit(0)

@isolate("process")
def test_mutates_a_frame_after_signalling_it():
    ring, writer = local("ring"), local("sender").channel
    start = writer._head
    frame = warning_frame("original-text")
    writer.sendall(frame)
    deadline = time.monotonic() + 10
    while tail(ring) < writer._head and time.monotonic() < deadline:
        time.sleep(0.001)
    mutated, done = frame.replace(b"original-text", b"mutated!-text"), 0
    for a, b in ring_slices(start, len(frame), ring.capacity):
        ring.region[DATA_OFFSET + a : DATA_OFFSET + b] = mutated[done : done + b - a]
        done += b - a
    signal(ring.data_ready)

@isolate("process")
def test_signals_without_writing():
    ring = local("ring")
    for _ in range(20000):
        signal(ring.data_ready)

@isolate("process")
def test_saturates_both_eventfds():
    ring = local("ring")
    saturate(ring.data_ready)
    saturate(ring.space_ready)
    print("after saturating")

@isolate("process", timeout=2)
def test_signals_without_data_forever():
    ring = local("ring")
    while True:
        signal(ring.data_ready)

@isolate("process")
def test_never_signals():
    import pytest_isolate.wire.shm as shm
    shm._signal = lambda fd: None
    print("reported without a signal")

@isolate("process", timeout=2)
def test_never_signals_and_hangs():
    import pytest_isolate.wire.shm as shm
    shm._signal = lambda fd: None
    time.sleep(60)

@isolate("process")
def test_floods_with_frames():
    sender = local("sender")
    for _ in range(100_001):
        sender.send({"type": "warning", "message": "m", "category": "UserWarning",
                     "filename": "f", "lineno": 1, "when": "runtest"})

@isolate("process")
def test_floods_with_bytes():
    writer = local("sender").channel
    frame = encode_frame({"type": "warning", "message": "m", "category": "UserWarning",
                          "filename": "f", "lineno": 1, "when": "runtest",
                          "pad": "p" * (15 * 1024 * 1024)})
    for _ in range(10):
        writer.sendall(frame)

@isolate("process")
def test_announces_a_frame_over_the_cap():
    local("sender").channel.sendall(struct.pack(">I", 20 * 1024 * 1024) + b"x" * 4_000_000)

@isolate("process")
def test_the_run_goes_on():
    assert True
"""
)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    root: Path = tmp_path_factory.mktemp("shm_hostile")
    write_project(root, {"test_generated.py": HOSTILE})
    return run_pytest(root, "--isolate-channel=shm", xdist=False)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("test_scribbles_over_the_indices", "unread bytes in a shared ring"),
        ("test_moves_the_write_index_backwards", "write index backwards"),
        ("test_claims_data_past_the_end_of_the_ring", "unread bytes in a shared ring"),
        ("test_leaves_half_a_frame_and_exits", "unfinished frame in the shared ring"),
        ("test_signals_without_data_forever", "timed out after 2"),
        ("test_never_signals_and_hangs", "timed out after 2"),
        ("test_floods_with_frames", "more than 100000 frames"),
        ("test_floods_with_bytes", "more than 134217728 bytes"),
        ("test_announces_a_frame_over_the_cap", "announced a frame of 20971520 bytes"),
    ],
)
def test_a_corrupting_or_silent_target_fails_its_test_with_the_reason(
    hostile_run: ProjectRun, name: str, reason: str
) -> None:
    assert hostile_run.outcome(name) == "FAILED"
    assert reason in hostile_run.report_of(name)


def test_the_broker_keeps_its_copy_when_the_target_mutates_a_frame_it_sent(
    hostile_run: ProjectRun,
) -> None:
    assert hostile_run.outcome("test_mutates_a_frame_after_signalling_it") == "PASSED"
    assert "UserWarning: original-text" in hostile_run.output
    assert "mutated!-text" not in hostile_run.output


def test_signals_without_data_cost_nothing_but_time(hostile_run: ProjectRun) -> None:
    assert hostile_run.outcome("test_signals_without_writing") == "PASSED"


def test_saturated_eventfds_block_neither_side(hostile_run: ProjectRun) -> None:
    assert hostile_run.outcome("test_saturates_both_eventfds") == "PASSED"
    assert "after saturating" in hostile_run.output


def test_reports_published_without_a_signal_are_found_when_the_target_ends(
    hostile_run: ProjectRun,
) -> None:
    assert hostile_run.outcome("test_never_signals") == "PASSED"
    assert "reported without a signal" in hostile_run.output


def test_the_run_goes_on_after_every_attack(hostile_run: ProjectRun) -> None:
    assert hostile_run.outcome("test_the_run_goes_on") == "PASSED"
    assert "INTERNALERROR" not in hostile_run.output
    assert "9 failed, 5 passed" in hostile_run.output
