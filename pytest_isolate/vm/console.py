"""The guest console, read into a bounded buffer by a background thread.

The console carries the kernel's messages, the command's stderr and QEMU's
own errors. A hostile guest can write to it without end, so only the last
``limit`` bytes are kept in memory and nothing goes to disk.
"""

from __future__ import annotations

import contextlib
import socket
import threading

DEFAULT_LIMIT = 256 * 1024


class ConsoleBuffer:
    """Drains ``sock`` until EOF, keeping its last ``limit`` bytes."""

    def __init__(self, sock: socket.socket, limit: int = DEFAULT_LIMIT) -> None:
        self._sock = sock
        self._limit = limit
        self._data = bytearray()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="vm-console", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while True:
                try:
                    chunk = self._sock.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                with self._lock:
                    self._data += chunk
                    if len(self._data) > self._limit:
                        del self._data[: len(self._data) - self._limit]
        finally:
            self._closed.set()

    def tail(self, max_bytes: int = 8192) -> str:
        with self._lock:
            data = bytes(self._data[-max_bytes:]) if max_bytes > 0 else b""
        return data.decode("utf-8", "replace").replace("\r\n", "\n")

    def wait_closed(self, timeout: float) -> bool:
        """Wait for the writer side to go away (QEMU exited), so the tail is complete."""
        return self._closed.wait(timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2.0)
        self._sock.close()


def without_panic_trace(text: str) -> str:
    """Drop the register dump after "Kernel panic": the panic line says it all.

    The guest ends by panicking when its command (PID 1) exits, so the trace
    is routine and would push the useful lines out of an error message.
    """
    marker = text.find("Kernel panic - not syncing")
    if marker < 0:
        return text
    end = text.find("\n", marker)
    return text if end < 0 else text[: end + 1]
