"""Helpers shared by the VM tests: a request loop run in the guest, and process checks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pytest_isolate.vm import Guest

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
