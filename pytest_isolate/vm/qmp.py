"""A minimal QMP client on the broker's private end of a socketpair.

Only what snapshots need: the handshake, commands with an optional passed
descriptor (``getfd`` takes its file through SCM_RIGHTS), and a deadline on
every answer. QEMU is trusted here (it runs our argv; the guest cannot reach
this socket), but a wedged QEMU must not hang the broker, hence the deadlines
and the bounded line buffer.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Sequence
from typing import Any

from pytest_isolate.vm.errors import VMError

#: QEMU's answers here are short; anything longer is not an answer we want.
MAX_LINE = 1 << 20


class QmpError(VMError):
    """QEMU refused a QMP command, closed the monitor or did not answer in time."""


class QmpClient:
    """Commands and answers on one QMP socket; events are skipped."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._pending = b""

    def handshake(self, timeout: float) -> None:
        """Read the greeting and leave capabilities negotiation mode."""
        greeting = self._read_message(time.monotonic() + timeout)
        if "QMP" not in greeting:
            raise QmpError(f"QEMU's monitor did not greet as QMP: {greeting!r}")
        self.execute("qmp_capabilities", timeout=timeout)

    def execute(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        fds: Sequence[int] = (),
        timeout: float = 10.0,
    ) -> Any:
        """Run ``command`` and return its ``return`` value; ``QmpError`` on error."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        data = json.dumps(request).encode()
        try:
            if fds:
                socket.send_fds(self._sock, [data], list(fds))
            else:
                self._sock.sendall(data)
        except OSError as exc:
            raise QmpError(f"cannot send {command!r} to QEMU: {exc}") from None
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if "return" in message:
                return message["return"]
            if "error" in message:
                error = message["error"]
                words = error.get("desc", error) if isinstance(error, dict) else error
                raise QmpError(f"QEMU refused {command!r}: {words}")

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QmpError("QEMU's monitor did not answer in time")
            readable, _, _ = select.select([self._sock], [], [], remaining)
            if not readable:
                continue
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QmpError("QEMU closed its monitor (it probably exited)")
            self._pending += chunk
            if len(self._pending) > MAX_LINE:
                raise QmpError("QEMU's monitor sent an over-long line")
        line, _, self._pending = self._pending.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            raise QmpError(f"QEMU's monitor sent non-JSON: {line[:200]!r}") from None
        if not isinstance(message, dict):
            raise QmpError(f"QEMU's monitor sent {message!r}")
        return message

    def close(self) -> None:
        self._sock.close()
