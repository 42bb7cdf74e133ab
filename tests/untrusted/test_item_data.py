"""The agent's description of a test, validated in the broker: accepted shapes and rejections."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_isolate.wire.frames import ProtocolViolation
from pytest_isolate.wire.item_data import MarkData, parse_item_data


def item(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "nodeid": "tests/test_a.py::TestX::test_y[1]",
        "location": ["tests/test_a.py", 12, "TestX.test_y[1]"],
        "keywords": ["test_y[1]", "TestX", "test_a.py", "slow"],
        "marks": [{"name": "slow", "args": [], "kwargs": {}}],
    }
    data.update(changes)
    return data


def test_a_well_formed_item_is_accepted_as_frozen_data() -> None:
    parsed = parse_item_data(
        item(marks=[{"name": "isolate", "args": ["container"], "kwargs": {"env": {"A": "1"}}}])
    )
    assert parsed.path == "tests/test_a.py"
    assert parsed.lineno == 12
    assert parsed.marks == (MarkData("isolate", ("container",), (("env", (("A", "1"),)),)),)
    assert parsed.marks[0].kwarg("env") == (("A", "1"),)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"nodeid": 3}, "nodeid"),
        ({"nodeid": "   "}, "empty node id"),
        ({"nodeid": "x" * 5000}, "nodeid"),
        ({"nodeid": "a\x00b"}, "nodeid"),
        ({"location": ["/etc/passwd", 1, "x"]}, "not relative"),
        ({"location": ["../../etc/passwd", 1, "x"]}, "leaves the rootdir"),
        ({"location": ["a/../../x.py", 1, "x"]}, "leaves the rootdir"),
        ({"location": ["a.py", -1, "x"]}, "lineno"),
        ({"location": ["a.py", True, "x"]}, "lineno"),
        ({"location": ["a.py", 1]}, "location"),
        ({"keywords": ["k"] * 201}, "keywords"),
        ({"keywords": [1]}, "not a string"),
        ({"marks": [{"name": "os.system", "args": [], "kwargs": {}}]}, "not an identifier"),
        ({"marks": [{"name": "m", "args": [], "kwargs": {}, "extra": 1}]}, "mark"),
        ({"marks": [{"name": "m", "args": [[[[[[1]]]]]], "kwargs": {}}]}, "nested deeper"),
        ({"marks": [{"name": "m", "args": [float("nan")], "kwargs": {}}]}, "non-finite"),
        ({"marks": [{"name": "m", "args": ["x" * 2000], "kwargs": {}}]}, "longer than"),
        ({"marks": [{"name": "m", "args": [], "kwargs": {"k": {1, 2}}}]}, "JSON"),
        ({"marks": [{"name": "m", "args": [], "kwargs": {}}] * 65}, "marks"),
        ({"surprise": 1}, "not {nodeid"),
    ],
)
def test_a_malformed_item_is_rejected_with_the_reason(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ProtocolViolation, match=words):
        parse_item_data(item(**changes))


def test_describe_turns_objects_in_mark_arguments_into_text() -> None:
    from pytest_isolate.wire.item_data import _plain

    class Weird:
        def __repr__(self) -> str:
            return "<weird>"

    assert _plain([1, "a", None, Weird(), {"k": (2.5, Weird())}]) == [
        1,
        "a",
        None,
        "<weird>",
        {"k": [2.5, "<weird>"]},
    ]
    assert _plain(float("inf")) == "inf"
