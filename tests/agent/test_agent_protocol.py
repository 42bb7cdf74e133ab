"""Every message is validated on arrival, in both directions (pure table tests)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_isolate.wire import agent_protocol as protocol
from pytest_isolate.wire.agent_protocol import (
    Collected,
    Exited,
    Hello,
    ProtocolViolation,
    RunRequest,
    StartRequest,
)

GOOD_START = StartRequest("/p", "/p", ("-p", "no:cacheprovider")).to_message()
GOOD_RUN = RunRequest("t.py::test", 1 << 20, 2.0, (("A", "b"),)).to_message()


def test_broker_messages_round_trip() -> None:
    assert protocol.parse_broker_message(GOOD_START) == StartRequest(
        "/p", "/p", ("-p", "no:cacheprovider")
    )
    assert protocol.parse_broker_message(GOOD_RUN) == RunRequest(
        "t.py::test", 1 << 20, 2.0, (("A", "b"),)
    )
    assert protocol.parse_broker_message({"type": "kill"}) == "kill"
    assert protocol.parse_broker_message({"type": "shutdown"}) == "shutdown"


def test_option_values_travel_with_the_start_request() -> None:
    options = (("target_env", "prod"), ("tbstyle", "short"), ("verbosity", 2), ("w", ["a", None]))
    start = StartRequest("/p", "/p", (), options=options)
    assert protocol.parse_broker_message(start.to_message()) == start


@pytest.mark.parametrize(
    "message",
    [
        {"type": "exec", "command": "sh"},
        {"type": "kill", "pid": 1},
        {**GOOD_RUN, "nodeid": 3},
        {**GOOD_RUN, "env": {"A": 1}},
        {**GOOD_RUN, "env": ["A=b"]},
        {**GOOD_RUN, "mem_limit": -1},
        {**GOOD_RUN, "mem_limit": 1.5},
        {**GOOD_RUN, "cpu_limit": True},
        {**GOOD_RUN, "extra": 1},
        {**GOOD_START, "args": "-p no:x"},
        {**GOOD_START, "args": [1]},
        {**GOOD_START, "limits": {}},
        {**GOOD_START, "rootdir": "x" * 5000},
        {**GOOD_START, "options": ["tbstyle"]},
        {**GOOD_START, "options": {"not a name": 1}},
        {**GOOD_START, "options": {"tbstyle": {"nested": 1}}},
        {**GOOD_START, "options": {"plugins": [["nested"]]}},
        {**GOOD_START, "options": {"tbstyle": "x" * 100_000}},
    ],
    ids=lambda m: str(m)[:50],
)
def test_malformed_broker_messages_are_rejected(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolViolation):
        protocol.parse_broker_message(message)


def test_agent_messages_round_trip() -> None:
    hello = Hello("3.11.2", "9.2.0", 1, "0.1.0")
    assert protocol.parse_hello(hello.to_message()) == hello
    collected = Collected(("a.py::t",), ("boom",))
    assert protocol.parse_collected(collected.to_message()) == collected
    exited = Exited(9, "garbage", (("stdout", "x"),), True)
    assert protocol.parse_exited(exited.to_message()) == exited


@pytest.mark.parametrize(
    ("parse", "message"),
    [
        (
            protocol.parse_hello,
            {"type": "hello", "python": "3", "pytest": "9", "pid": True, "agent": "x"},
        ),
        (
            protocol.parse_hello,
            {"type": "hello", "python": "3", "pytest": "9", "pid": 0, "agent": "x"},
        ),
        (protocol.parse_hello, {"type": "collected", "nodeids": [], "errors": []}),
        (protocol.parse_collected, {"type": "collected", "nodeids": "a", "errors": []}),
        (protocol.parse_collected, {"type": "collected", "nodeids": [None], "errors": []}),
        (protocol.parse_exited, {"type": "exited", "status": 1 << 20}),
        (protocol.parse_exited, {"type": "exited", "status": "0"}),
        (protocol.parse_exited, {"type": "exited", "status": 0, "sections": [["a", "b", "c"]]}),
        (protocol.parse_exited, {"type": "exited", "status": 0, "sections": [["t", "x" * 70000]]}),
        (protocol.parse_exited, {"type": "exited", "status": 0, "sections": [["t", "x"]] * 9}),
        (protocol.parse_exited, {"type": "exited", "status": 0, "oom_killed": 1}),
        (protocol.parse_exited, {"type": "exited", "status": 0, "forged": True}),
        (protocol.parse_refused, {"type": "refused", "message": {"a": 1}}),
    ],
    ids=lambda v: str(v)[:60] if isinstance(v, dict) else getattr(v, "__name__", "?"),
)
def test_malformed_agent_messages_are_rejected(parse: Any, message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolViolation):
        parse(message)


def test_only_test_frames_may_come_from_a_tests_child() -> None:
    from pytest_isolate.wire.test_frames import TEST_FRAME_TYPES

    assert {
        "report",
        "warning",
        "coverage",
        "examples",
        "benchmark",
        "exit",
        "kept-file",
        "kept-files",
        "setup-error",
        "done",
    } == TEST_FRAME_TYPES


# -- seccomp= in spawned targets ------------------------------------------------------
POLICY = protocol.SeccompRequest(b"\x06\x00\x00\x00\x00\x00\xff\x7f", None, 317, kill=False)
EXITED_UNDER_POLICY = Exited(
    status=0,
    seccomp=protocol.SeccompOutcome(
        denials=((0xC000003E, 41, (2, 1, 0, 0, 0, 0), 3, False),), kernel_kill=(0xC000003E, 165)
    ),
)


def test_a_policy_travels_as_finished_bpf_and_comes_back_as_numbers() -> None:
    run = RunRequest("t.py::test", seccomp=POLICY)
    assert protocol.parse_broker_message(run.to_message()) == run
    assert protocol.parse_exited(EXITED_UNDER_POLICY.to_message()) == EXITED_UNDER_POLICY


def _run_with(**seccomp: Any) -> dict[str, Any]:
    message = RunRequest("t.py::test", seccomp=POLICY).to_message()
    message["seccomp"].update(seccomp)
    return message


@pytest.mark.parametrize(
    "message",
    [
        _run_with(baseline="not base64!"),
        _run_with(baseline="AAAA"),  # 3 bytes: not whole BPF instructions
        _run_with(baseline="A" * 50_000),
        _run_with(notify=[1, 2]),
        _run_with(kill="yes"),
        _run_with(seccomp_nr=-1),
        _run_with(extra=1),
        {**GOOD_RUN, "seccomp": "default"},
    ],
)
def test_malformed_policies_are_refused_by_the_agent(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolViolation):
        protocol.parse_broker_message(message)


def _exited_with(**seccomp: Any) -> dict[str, Any]:
    message = EXITED_UNDER_POLICY.to_message()
    message["seccomp"].update(seccomp)
    return message


@pytest.mark.parametrize(
    "message",
    [
        _exited_with(denials=[[1, 2, [3], 1, False]] * (protocol.MAX_RAW_VIOLATIONS + 1)),
        _exited_with(denials=[[1, 2, [3], 0, False]]),  # a count of zero
        _exited_with(denials=[[1, 2, [3] * 7, 1, False]]),  # seven arguments
        _exited_with(denials=[[1, 2, [1 << 64], 1, False]]),
        _exited_with(denials=[[1, 2, [3], 1, "no"]]),
        _exited_with(denials=[["x86_64", 2, [], 1, False]]),
        _exited_with(kernel_kill=[1]),
        _exited_with(kernel_kill="mount"),
        _exited_with(error="x" * 5000),
        {**EXITED_UNDER_POLICY.to_message(), "seccomp": ["socket"]},
    ],
)
def test_hostile_seccomp_outcomes_break_the_protocol(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolViolation):
        protocol.parse_exited(message)
