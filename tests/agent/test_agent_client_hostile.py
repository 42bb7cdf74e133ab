"""The broker's client against a hostile agent: a real socket, the test plays the agent."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from pytest_isolate.spec import IsolateSpec
from pytest_isolate.supervision.agent_client import AgentClient, AgentDead
from pytest_isolate.wire.agent_protocol import Hello
from pytest_isolate.wire.frames import FrameLimits, encode_frame

HELLO = Hello("3.11", "9.2", 7, "0.1").to_message()
SPEC = IsolateSpec(backend="container", timeout=2)


@pytest.fixture
def pair() -> Iterator[tuple[AgentClient, socket.socket]]:
    broker_end, agent_end = socket.socketpair()
    yield AgentClient(broker_end, kill_grace=0.5), agent_end
    broker_end.close()
    agent_end.close()


def test_a_malformed_hello_makes_the_agent_dead(pair) -> None:
    client, agent = pair
    agent.sendall(encode_frame({**HELLO, "pid": "1"}))
    with pytest.raises(AgentDead, match="hello is malformed"):
        client.hello(timeout=2)
    assert client.dead is not None


def test_a_frame_announcing_too_many_bytes_makes_the_agent_dead(pair) -> None:
    client, agent = pair
    agent.sendall(struct.pack(">I", 1 << 30))
    with pytest.raises(AgentDead, match="broke the protocol"):
        client.hello(timeout=2)


def test_a_silent_agent_times_out_the_hello(pair) -> None:
    client, _agent = pair
    with pytest.raises(AgentDead, match="did not send 'hello' within"):
        client.hello(timeout=0.2)


def test_a_report_for_another_test_fails_the_test_and_kills_the_target(pair) -> None:
    client, agent = pair
    forged = {"type": "report", "report": {"nodeid": "other.py::test_x", "when": "call"}}
    agent.sendall(encode_frame(forged))
    result = client.run("mine.py::test_a", SPEC, FrameLimits())
    assert result.failure is not None and "protocol" in result.failure
    assert client.dead is not None
    assert client.run("mine.py::test_b", SPEC, FrameLimits()).failure.startswith("target is dead")


def test_an_agent_that_ignores_kill_is_declared_dead(pair) -> None:
    client, _agent = pair
    spec = IsolateSpec(backend="container", timeout=0.3)
    started = time.monotonic()
    result = client.run("mine.py::test_a", spec, FrameLimits())
    assert result.failure_kind == "timeout"
    assert "did not answer a kill within 0.5 s" in (result.failure or "")
    assert time.monotonic() - started < 3
    assert client.dead is not None


def test_an_agent_that_vanishes_mid_test_is_reported(pair) -> None:
    client, agent = pair
    threading.Timer(0.2, agent.close).start()
    result = client.run("mine.py::test_a", SPEC, FrameLimits())
    assert result.failure == "the target went away during setup"
