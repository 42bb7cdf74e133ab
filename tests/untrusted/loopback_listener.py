"""A TCP listener on the host's loopback that records what reaches it.

Evidence for the untrusted tests: a target that is meant to have no network
must leave it empty; one granted the network leaves what it sent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class LoopbackListener:
    """Accepts on 127.0.0.1 in a thread; ``received`` holds the first bytes of each connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # the socket was closed: stop
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    conn.settimeout(2)
                    with contextlib.suppress(OSError):  # one bad client does not stop the rest
                        self.received.append(conn.recv(100))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        self.sock.close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def loopback_listener() -> Iterator[LoopbackListener]:
    listener = LoopbackListener()
    try:
        yield listener
    finally:
        listener.close()
