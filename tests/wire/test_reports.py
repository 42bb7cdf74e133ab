"""The report allow-list: what a target's report dict may contain, and what it may not."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pytest_isolate.wire.frames import ProtocolViolation
from pytest_isolate.wire.reports import FAILED_SUBTESTS, MAX_LIST, MAX_STRING, sanitize_report

NODEID = "test_x.py::test_x"


def report(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "$report_type": "TestReport",
        "nodeid": NODEID,
        "location": ["test_x.py", 3, "test_x"],
        "keywords": {"test_x": 1},
        "outcome": "passed",
        "longrepr": None,
        "when": "call",
        "sections": [["Captured stdout call", "hello\n"]],
        "user_properties": [["answer", 42]],
        "duration": 0.01,
        "start": 1.0,
        "stop": 1.01,
    }
    base.update(changes)
    return base


def as_json(value: Any) -> Any:
    """Tuples and lists are the same thing on the wire."""
    return json.loads(json.dumps(value))


def test_a_well_formed_report_passes_unchanged() -> None:
    assert as_json(sanitize_report(report(), NODEID)) == report()


def test_unknown_keys_are_dropped() -> None:
    clean = sanitize_report(report(__class__="os.system", evil=1, _to_json="x"), NODEID)
    assert "evil" not in clean
    assert "__class__" not in clean
    assert "_to_json" not in clean


def test_report_for_another_test_is_refused() -> None:
    with pytest.raises(ProtocolViolation, match=r"sent a report for 'test_x\.py::other'"):
        sanitize_report(report(nodeid="test_x.py::other"), NODEID)


def test_the_input_is_not_modified() -> None:
    data = report(extra=1)
    before = copy.deepcopy(data)
    sanitize_report(data, NODEID)
    assert data == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"$report_type": "CollectReport"}, "$report_type"),
        ({"when": "later"}, "when"),
        ({"outcome": "won"}, "outcome"),
        ({"nodeid": 3}, "nodeid"),
        ({"location": ["a", "b", "c"]}, "location"),
        ({"location": ["a", 1]}, "location"),
        ({"duration": "fast"}, "duration"),
        ({"duration": True}, "duration"),
        ({"sections": [["only a title"]]}, "sections"),
        ({"sections": [["title", 7]]}, "sections"),
        ({"user_properties": [["name"]]}, "user_properties"),
        ({"user_properties": [[1, "v"]]}, "user_properties"),
        ({"keywords": ["not", "a", "dict"]}, "keywords"),
        ({"longrepr": 42}, "longrepr"),
        ({"longrepr": ["path", "x", "reason"]}, "longrepr"),
        ({"wasxfail": 1}, "wasxfail"),
        ({"sections": [["t", "x"]] * (MAX_LIST + 1)}, "sections"),
        ({"longrepr": "x" * (MAX_STRING + 1)}, "longrepr"),
    ],
)
def test_wrong_types_and_sizes_are_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ProtocolViolation, match=f"report field {field.replace('$', '.')}"):
        sanitize_report(report(**changes), NODEID)


def test_a_report_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ProtocolViolation, match="report field report"):
        sanitize_report(["a", "list"], NODEID)


def test_skip_location_triple_is_kept() -> None:
    clean = sanitize_report(report(outcome="skipped", longrepr=["test_x.py", 3, "no"]), NODEID)
    assert as_json(clean["longrepr"]) == ["test_x.py", 3, "no"]


def test_exception_longrepr_is_rebuilt_field_by_field() -> None:
    entry = {
        "type": "ReprEntry",
        "data": {
            "lines": ["    assert 0", "E   assert 0"],
            "reprfuncargs": {"args": [["x", "1"]]},
            "reprlocals": None,
            "reprfileloc": {"path": "test_x.py", "lineno": 3, "message": "AssertionError"},
            "style": "long",
            "injected": "dropped",
        },
    }
    longrepr = {
        "reprcrash": {"path": "test_x.py", "lineno": 3, "message": "assert 0"},
        "reprtraceback": {"reprentries": [entry], "extraline": None, "style": "long"},
        "sections": [],
        "chain": None,
        "injected": "dropped",
    }
    clean = sanitize_report(report(outcome="failed", longrepr=longrepr), NODEID)
    assert "injected" not in clean["longrepr"]
    assert "injected" not in clean["longrepr"]["reprtraceback"]["reprentries"][0]["data"]
    assert clean["longrepr"]["reprcrash"]["message"] == "assert 0"


def test_unknown_traceback_entry_type_is_refused() -> None:
    longrepr = {
        "reprcrash": None,
        "reprtraceback": {
            "reprentries": [{"type": "Pickled", "data": {"lines": []}}],
            "style": "long",
        },
    }
    with pytest.raises(ProtocolViolation, match="ReprEntry or ReprEntryNative"):
        sanitize_report(report(outcome="failed", longrepr=longrepr), NODEID)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"i": "1"},  # pytest 9.1 and later: saferepr strings
        {"i": 1, "f": 0.5, "b": True, "n": None, "s": "x"},  # pytest 9.0: the values as given
    ],
)
def test_subtest_report_keeps_its_context_as_json_scalars(kwargs: dict[str, object]) -> None:
    data = report(
        _report_type="SubTestReport",
        **{"$report_type": None, "_subtest.context": {"msg": "case", "kwargs": kwargs}},
    )
    clean = sanitize_report(data, NODEID)
    assert clean["_report_type"] == "SubTestReport"
    assert clean["_subtest.context"] == {"msg": "case", "kwargs": kwargs}


@pytest.mark.parametrize("value", [[1], {"a": 1}])
def test_subtest_kwargs_must_be_json_scalars(value: object) -> None:
    data = report(
        _report_type="SubTestReport",
        **{"$report_type": None, "_subtest.context": {"msg": None, "kwargs": {"i": value}}},
    )
    with pytest.raises(ProtocolViolation):
        sanitize_report(data, NODEID)


@pytest.mark.parametrize(("count", "kept"), [(2, True), (-1, False), ("2", False), (10**9, False)])
def test_the_targets_failed_subtest_count_is_a_bounded_count(count: object, kept: bool) -> None:
    data = report(outcome="passed", **{FAILED_SUBTESTS: count})
    if kept:
        assert sanitize_report(data, NODEID)[FAILED_SUBTESTS] == count
    else:
        with pytest.raises(ProtocolViolation, match=FAILED_SUBTESTS):
            sanitize_report(data, NODEID)
