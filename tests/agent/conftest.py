"""A real agent process on the host, driven over a socketpair, running a small project."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_isolate.supervision.agent_client import AgentClient
from pytest_isolate.wire.agent_protocol import StartRequest

REPO = Path(__file__).resolve().parents[2]

PROJECT = """
import ctypes, os, socket, stat, struct, sys, time, json

def test_passes():
    print("hello from the target")

def test_fails():
    assert 1 == 2

def test_segfaults():
    ctypes.string_at(0)

def test_sleeps():
    time.sleep(60)

def test_leaves_a_daemon():
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_end, str(os.getpid()).encode())
            time.sleep(600)
        os._exit(0)
    os.close(write_end)
    print("DAEMON", os.read(read_end, 32).decode())

def _channel():
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                return fd
        except OSError:
            pass
    raise AssertionError("no channel")

def test_writes_garbage_to_its_channel():
    os.write(_channel(), b"\\xff" * 64)
    time.sleep(5)

def test_forges_an_exited_frame():
    body = json.dumps({"type": "exited", "status": 0}).encode()
    os.write(_channel(), struct.pack(">I", len(body)) + body)
    time.sleep(5)

def test_reads_its_environment():
    print("SECRET=" + os.environ.get("AGENT_TEST_SECRET", "absent"))
    print("EXTRA=" + os.environ.get("EXTRA", "absent"))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "test_project.py").write_text(textwrap.dedent(PROJECT))
    tmp_path.chmod(0o755)
    return tmp_path


class RunningAgent:
    def __init__(self, process: subprocess.Popen[bytes], client: AgentClient, sock: socket.socket):
        self.process = process
        self.client = client
        self.sock = sock


@pytest.fixture
def start_agent(project: Path) -> Iterator[Callable[[], RunningAgent]]:
    started: list[RunningAgent] = []

    def _start() -> RunningAgent:
        broker_end, agent_end = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=str(REPO), AGENT_TEST_SECRET="hunter2")
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest_isolate.agent"],
            stdin=agent_end,
            stdout=agent_end,
            stderr=subprocess.DEVNULL,
            cwd=project,
            env=env,
        )
        agent_end.close()
        client = AgentClient(broker_end, kill_grace=5.0)
        client.hello(timeout=30)
        args = ("-p", "no:cacheprovider", "--rootdir", str(project), "test_project.py")
        client.start(StartRequest(str(project), str(project), args), timeout=60)
        agent = RunningAgent(process, client, broker_end)
        started.append(agent)
        return agent

    yield _start
    for agent in started:
        agent.client.shutdown()
        agent.sock.close()
        try:
            agent.process.wait(10)
        except subprocess.TimeoutExpired:
            agent.process.kill()
            agent.process.wait()
            pytest.fail("the agent did not end after shutdown")
