"""The shared ring's bounds rules, as pure functions: what a published head may claim."""

from __future__ import annotations

import pytest

from pytest_isolate.wire.frames import ProtocolViolation
from pytest_isolate.wire.shm import claimed_span, ring_slices


@pytest.mark.parametrize(
    ("head", "tail", "capacity", "span"),
    [
        (0, 0, 16, 0),
        (5, 0, 16, 5),
        (16, 0, 16, 16),  # exactly full
        (40, 30, 16, 10),  # counters past the capacity: only the difference counts
        (2**64 - 1, 2**64 - 17, 16, 16),
    ],
)
def test_a_head_within_capacity_of_the_tail_claims_the_difference(
    head: int, tail: int, capacity: int, span: int
) -> None:
    assert claimed_span(head, tail, capacity) == span


@pytest.mark.parametrize(
    ("head", "tail", "capacity"),
    [(17, 0, 16), (2**64 - 1, 0, 16), (1000, 983, 16)],
)
def test_a_head_claiming_more_than_the_ring_holds_is_a_violation(
    head: int, tail: int, capacity: int
) -> None:
    with pytest.raises(ProtocolViolation, match="unread bytes in a shared ring of 16 bytes"):
        claimed_span(head, tail, capacity)


@pytest.mark.parametrize(("head", "tail"), [(0, 1), (99, 100), (0, 2**63)])
def test_a_head_behind_the_readers_tail_is_a_violation(head: int, tail: int) -> None:
    with pytest.raises(ProtocolViolation, match="backwards"):
        claimed_span(head, tail, 16)


@pytest.mark.parametrize(
    ("position", "length", "capacity", "slices"),
    [
        (0, 0, 16, []),
        (0, 16, 16, [(0, 16)]),
        (3, 5, 16, [(3, 8)]),
        (12, 8, 16, [(12, 16), (0, 4)]),  # wraps
        (16, 4, 16, [(0, 4)]),  # a full lap later: back at the start
        (31, 16, 16, [(15, 16), (0, 15)]),
    ],
)
def test_slices_stay_inside_the_data_area_and_wrap_at_most_once(
    position: int, length: int, capacity: int, slices: list[tuple[int, int]]
) -> None:
    found = ring_slices(position, length, capacity)
    assert found == slices
    assert all(0 <= start < end <= capacity for start, end in found)
    assert sum(end - start for start, end in found) == length
