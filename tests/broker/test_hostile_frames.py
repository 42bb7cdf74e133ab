"""Garbage and forged frames on every descriptor: the sender's test fails, nothing else changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

HOSTILE = """
    import json, os, random, struct
    from pytest_isolate import isolate

    def spray(data):
        \"\"\"Write to every descriptor this target has: one of them is the channel.\"\"\"
        for name in os.listdir("/proc/self/fd"):
            try:
                os.write(int(name), data)
            except OSError:
                pass

    def frame(body):
        return struct.pack(">I", len(body)) + body

    def test_victim_fails_on_its_own():
        assert False, "the victim's own failure"

    def test_bystander_passes():
        pass

    @isolate()
    def test_random_bytes():
        spray(random.Random(7).randbytes(4096))

    @isolate()
    def test_forged_report_for_another_test():
        report = {
            "$report_type": "TestReport", "nodeid": "test_hostile.py::test_victim_fails_on_its_own",
            "when": "call", "outcome": "passed", "location": ["test_hostile.py", 1, "x"],
            "longrepr": None, "keywords": {}, "sections": [], "duration": 0.0,
        }
        spray(frame(json.dumps({"type": "report", "report": report}).encode()))

    @isolate()
    def test_frame_announcing_4_gb():
        spray(struct.pack(">I", 0xFFFFFFFF) + b"{")

    @isolate()
    def test_deeply_nested_json():
        spray(frame(b'{"type":"report","report":' + b"[" * 100000 + b"]" * 100000 + b"}"))

    @isolate()
    def test_invalid_utf8():
        spray(frame(b'{"type":"report","report":"\\xff\\xfe"}'))

    @isolate()
    def test_huge_user_property(record_property):
        record_property("huge", "x" * 50_000_000)

    @isolate()
    def test_isolated_bystander_passes():
        pass
"""

HOSTILE_TESTS = [
    "test_random_bytes",
    "test_forged_report_for_another_test",
    "test_frame_announcing_4_gb",
    "test_deeply_nested_json",
    "test_invalid_utf8",
    "test_huge_user_property",
]


@pytest.fixture(scope="module")
def run(module_dir: Path) -> ProjectRun:
    write_project(module_dir, {"test_hostile.py": HOSTILE})
    return run_pytest(module_dir)


@pytest.mark.parametrize("name", HOSTILE_TESTS)
def test_hostile_test_fails_with_broke_the_protocol_during_call(run: ProjectRun, name: str) -> None:
    assert run.outcome(name) == "FAILED"
    assert "target broke the protocol and was killed during call" in run.report_of(name)


def test_forged_report_is_named_as_such(run: ProjectRun) -> None:
    report = run.report_of("test_forged_report_for_another_test")
    assert "sent a report for 'test_hostile.py::test_victim_fails_on_its_own'" in report


def test_forged_report_does_not_change_the_other_tests_outcome(run: ProjectRun) -> None:
    assert run.outcome("test_victim_fails_on_its_own") == "FAILED"
    assert "the victim's own failure" in run.report_of("test_victim_fails_on_its_own")


def test_four_gb_frame_is_refused_on_its_header(run: ProjectRun) -> None:
    assert "announced a frame of 4294967295 bytes" in run.report_of("test_frame_announcing_4_gb")


def test_deep_nesting_is_refused(run: ProjectRun) -> None:
    assert "nested deeper than" in run.report_of("test_deeply_nested_json")


def test_invalid_utf8_is_refused(run: ProjectRun) -> None:
    assert "not UTF-8" in run.report_of("test_invalid_utf8")


def test_huge_user_property_is_a_clear_failure(run: ProjectRun) -> None:
    report = run.report_of("test_huge_user_property")
    assert "announced a frame of" in report
    assert "(limit 16777216)" in report


def test_session_goes_on_and_other_outcomes_are_untouched(run: ProjectRun) -> None:
    assert run.outcome("test_bystander_passes") == "PASSED"
    assert run.outcome("test_isolated_bystander_passes") == "PASSED"
    assert "7 failed, 2 passed" in run.output
    assert "6 broke the protocol" in run.output
