"""Pure decisions, table-tested: option parsing, spec building, and how an end is described."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from pytest_isolate.spec import (
    Defaults,
    IsolateSpec,
    SpecError,
    build_spec,
    check_backend_name,
    parse_seconds,
    parse_size,
)
from pytest_isolate.supervision.outcome import EndState, describe_end, format_bytes, phase_after

WHERE = "test_x.py::test_x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (4096, 4096),
        ("4096", 4096),
        ("512M", 512 << 20),
        ("512m", 512 << 20),
        ("2G", 2 << 30),
        ("1.5g", int(1.5 * (1 << 30))),
        ("64KiB", 64 << 10),
        (" 1 T ", 1 << 40),
        ("200MB", 200 << 20),
    ],
)
def test_parse_size_accepts_bytes_and_units(value: object, expected: int | None) -> None:
    assert parse_size(value, "mem_limit") == expected


@pytest.mark.parametrize("value", ["lots", "", "-1M", "0", 0, -5, True, 1.5, "5X", "0.1", [1]])
def test_parse_size_refuses_what_is_not_a_positive_size(value: object) -> None:
    with pytest.raises(SpecError, match=r"mem_limit="):
        parse_size(value, "mem_limit")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (5, 5.0), (0.5, 0.5), ("5", 5.0), ("2.5s", 2.5), (" 3 ", 3.0)],
)
def test_parse_seconds_accepts_numbers(value: object, expected: float | None) -> None:
    assert parse_seconds(value, "timeout") == expected


@pytest.mark.parametrize("value", ["soon", 0, -1, "0", True, [5], float("nan")])
def test_parse_seconds_refuses_what_is_not_positive_seconds(value: object) -> None:
    with pytest.raises(SpecError, match=r"timeout="):
        parse_seconds(value, "timeout")


def spec(kwargs: dict[str, Any], defaults: Defaults | None = None) -> IsolateSpec:
    return build_spec("process", kwargs, defaults or Defaults(), {}, WHERE)


def test_marker_values_win_over_defaults() -> None:
    defaults = Defaults(timeout=10, mem_limit=1 << 30, cpu_limit=20)
    resolved = spec({"timeout": 1, "mem_limit": "200M", "cpu_limit": 2}, defaults)
    assert (resolved.timeout, resolved.mem_limit, resolved.cpu_limit) == (1.0, 200 << 20, 2.0)


def test_defaults_fill_what_the_marker_leaves_out() -> None:
    resolved = spec({}, Defaults(timeout=10, mem_limit=1 << 30, cpu_limit=20))
    assert (resolved.timeout, resolved.mem_limit, resolved.cpu_limit) == (10, 1 << 30, 20)


def test_spec_is_hashable_with_dict_and_list_values() -> None:
    resolved = spec({"env": {"B": "2", "A": "1"}, "seccomp": {"allow": ["read", "write"]}})
    assert resolved.env == (("A", "1"), ("B", "2"))
    assert hash(resolved) == hash(
        spec({"env": {"A": "1", "B": "2"}, "seccomp": {"allow": ["read", "write"]}})
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"colour": "blue"}, "unknown keyword colour for backend 'process'; valid keywords: "),
        (
            {"timout": 5},
            "unknown keyword timout for backend 'process' (did you mean timeout?)",
        ),
        ({"memlimit": "1G"}, "(did you mean mem_limit?); valid keywords: "),
        ({"timeout": "soon"}, "test_x.py::test_x: timeout='soon' is not a number of seconds"),
        ({"mem_limit": "lots"}, "test_x.py::test_x: mem_limit='lots' is not a size"),
        ({"cpu_limit": -1}, "test_x.py::test_x: cpu_limit=-1 must be a positive number"),
        ({"network": "yes"}, "network='yes' must be True or False"),
        ({"env": {"A": 1}}, "must be a dict of str to str"),
        ({"env": ["A=1"]}, "must be a dict of str to str"),
        ({"channel": "carrier pigeon"}, "valid channels: pipe, shm"),
        ({"fresh": 1}, "fresh=1 must be True or False"),
        ({"pids_limit": 0}, "pids_limit=0 must be a positive integer"),
        ({"pids_limit": True}, "pids_limit=True must be a positive integer"),
        ({"seccomp": {"allow": bytearray(b"x")}}, "cannot be used as an isolate option value"),
    ],
)
def test_bad_marker_keywords_are_errors_that_name_the_test(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as info:
        spec(kwargs)
    assert message in str(info.value)
    assert str(info.value).startswith(WHERE)


def test_backend_keywords_are_accepted_and_kept_as_options() -> None:
    resolved = build_spec("x", {"image": "py311"}, Defaults(), {"image": "the image"}, WHERE)
    assert resolved.option("image") == "py311"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "unknown backend 'nope'; valid backends: process, seccomp"),
        (3, "backend must be a name, got 3; valid backends: process, seccomp"),
        (None, "backend must be a name, got None"),
    ],
)
def test_backend_names_are_checked(name: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        check_backend_name(name, ["seccomp", "process"], WHERE)


def killed(number: int) -> int:
    return number  # a wait status for death by signal ``number`` (no core dump)


def exited(code: int) -> int:
    return code << 8


@pytest.mark.parametrize(
    ("state", "sentence"),
    [
        (EndState(exited(0), "teardown", finished=True), None),
        (EndState(killed(signal.SIGSEGV), "call"), "killed by signal 11 (SIGSEGV) during call"),
        (EndState(killed(signal.SIGABRT), "setup"), "killed by signal 6 (SIGABRT) during setup"),
        (EndState(killed(signal.SIGKILL), "call"), "killed by signal 9 (SIGKILL) during call"),
        (EndState(exited(3), "call"), "exited with status 3 during call"),
        (EndState(exited(0), "call"), "exited with status 0 during call"),
        (EndState(exited(2), "teardown", finished=True), "exited with status 2 after finishing"),
        (EndState(None, "call", timed_out=5.0), "timed out after 5 s and was killed during call"),
        (EndState(None, "call", timed_out=0.5), "timed out after 0.5 s"),
        (
            EndState(killed(9), "call", protocol_error="bad frame"),
            "broke the protocol and was killed during call: bad frame",
        ),
        (EndState(None, "call"), "target vanished without an exit status during call"),
        (
            EndState(killed(signal.SIGKILL), "call", oom_killed=True, mem_limit=512 << 20),
            "killed by the OOM killer (limit 512 MiB) during call",
        ),
        (
            EndState(killed(signal.SIGXCPU), "call", cpu_limit=2.0),
            "exceeded its CPU limit of 2 s during call",
        ),
        (
            EndState(killed(signal.SIGKILL), "call", cpu_limit=2.0),
            "killed by signal 9 (SIGKILL) during call; probably exceeded its CPU limit of 2 s",
        ),
        (
            EndState(killed(signal.SIGSYS), "call"),
            "killed by signal 31 (SIGSYS) during call: a forbidden syscall",
        ),
        (EndState(killed(64), "call"), "killed by signal 64 ("),
    ],
)
def test_describe_end_says_what_happened_in_words(state: EndState, sentence: str | None) -> None:
    described = describe_end(state)
    if sentence is None:
        assert described is None
    else:
        assert described is not None and sentence in described


def test_timeout_wins_over_the_signal_that_enforced_it() -> None:
    state = EndState(killed(signal.SIGKILL), "call", timed_out=1.0)
    assert describe_end(state) == "timed out after 1 s and was killed during call"


@pytest.mark.parametrize(
    ("seen", "phase"),
    [
        ([], "setup"),
        (["setup"], "call"),
        (["setup", "call"], "teardown"),
        (["setup", "call", "teardown"], "teardown"),
    ],
)
def test_phase_after_the_reported_ones(seen: list[str], phase: str) -> None:
    assert phase_after(seen) == phase


@pytest.mark.parametrize(
    ("count", "text"),
    [(100, "100 bytes"), (2048, "2 KiB"), (512 << 20, "512 MiB"), (3 << 29, "1.5 GiB")],
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text
