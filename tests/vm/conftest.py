"""Fixtures for the VM layer tests: real QEMU, the host's real kernel.

Each boot costs seconds under TCG, so one guest running a small request loop
is shared by every test that only needs to look around inside a guest.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_isolate.vm import Guest, VMConfig

REPO = str(Path(__file__).resolve().parents[2])

#: Runs in the guest: one JSON request per line, one JSON answer per line.
#: "echo" returns its data; "run" executes test-supplied code and returns
#: its ``result`` variable (the tests trust what they send themselves).
REQUEST_LOOP = r"""
import json, sys
out = sys.stdout
out.write("ready\n"); out.flush()
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "echo":
        answer = request["data"]
    else:
        scope = {}
        try:
            exec(request["code"], scope)
            answer = scope.get("result")
        except BaseException as exc:
            answer = {"error": type(exc).__name__, "message": str(exc)}
    out.write(json.dumps(answer) + "\n"); out.flush()
"""


class GuestSession:
    """The host side of ``REQUEST_LOOP``: send a request, read one answer line."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        guest.channel.settimeout(60)
        self._pending = b""

    def readline(self) -> bytes:
        while b"\n" not in self._pending:
            chunk = self.guest.channel.recv(65536)
            if not chunk:
                raise EOFError("guest closed the channel:\n" + self.guest.console_tail())
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def request(self, **request: Any) -> Any:
        self.guest.channel.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(self.readline())

    def run(self, code: str) -> Any:
        return self.request(op="run", code=code)


@pytest.fixture(scope="module")
def host_secret() -> Iterator[Path]:
    """A file under /root on the host, created before the shared guest boots."""
    path = Path("/root") / f".pytest-isolate-secret-{uuid.uuid4().hex}"
    path.write_text("host secret\n")
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def booted(host_secret: Path) -> Iterator[tuple[GuestSession, float]]:
    """One guest running the request loop, and its seconds from start to first byte."""
    config = VMConfig(
        command=(sys.executable, "-c", REQUEST_LOOP),
        shares=(REPO,),
        env=(("PATH", "/usr/bin:/bin"), ("LC_ALL", "C.UTF-8"), ("PI_MARK", "guest-env")),
        cwd=REPO,
        accel="auto",
    )
    started = time.monotonic()
    guest = Guest.start(config)
    try:
        guest.wait_ready()
        session = GuestSession(guest)
        assert session.readline() == b"ready"
        yield session, time.monotonic() - started
    finally:
        guest.kill()


@pytest.fixture
def guest_session(booted: tuple[GuestSession, float]) -> GuestSession:
    return booted[0]


def qemu_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not qemu_alive(pid):
            return True
        time.sleep(0.05)
    return not qemu_alive(pid)
