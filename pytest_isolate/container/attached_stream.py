"""A container's stdin and stdout as one clean byte stream.

The SDK's attach socket has three traps (see FIELD-NOTES): the object it
returns is a ``socket.SocketIO`` without ``sendall`` (so we write to the
socket underneath), ending stdin needs ``shutdown(SHUT_WR)`` rather than
``close`` (which would also end our reading), and without a TTY the output is
multiplexed into frames with an 8-byte header: ``[stream, 0, 0, 0, size:4 big
endian]``. :class:`StreamDemultiplexer` undoes the framing (pure, streaming,
never buffers a whole frame); :class:`AttachedStream` delivers stdout bytes
and keeps only a bounded tail of stderr for error messages.

Attach *before* starting the container: the SDK reads the HTTP upgrade
answer through a buffered reader and we take the raw socket under it, so
output produced before the attach completed could sit unseen in that buffer.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
from collections.abc import Iterator
from typing import Any

HEADER_SIZE = 8
STDIN, STDOUT, STDERR = 0, 1, 2
DEFAULT_STDERR_TAIL = 64 * 1024


class StreamFramingError(ValueError):
    """The engine's multiplexed stream had a header we do not understand."""


class StreamDemultiplexer:
    """Split Docker's multiplexed attach stream into (stream id, bytes) pieces.

    Feed it whatever the socket returned; it yields payload pieces as soon
    as they arrive, carrying partial headers and frames across calls.
    """

    def __init__(self) -> None:
        self._header = b""
        self._stream = STDOUT
        self._remaining = 0

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        view = memoryview(data)
        while view:
            if self._remaining == 0:
                need = HEADER_SIZE - len(self._header)
                self._header += bytes(view[:need])
                view = view[need:]
                if len(self._header) < HEADER_SIZE:
                    return
                stream, size = struct.unpack(">BxxxL", self._header)
                self._header = b""
                if stream not in (STDIN, STDOUT, STDERR):
                    raise StreamFramingError(f"unknown stream id {stream} in attach stream")
                self._stream, self._remaining = stream, size
                continue
            piece = bytes(view[: self._remaining])
            view = view[len(piece) :]
            self._remaining -= len(piece)
            yield self._stream, piece

    @property
    def mid_frame(self) -> bool:
        """True when the stream stopped inside a header or a frame."""
        return bool(self._header) or self._remaining > 0


class AttachedStream:
    """Byte stream to a container's stdin and from its stdout.

    ``read`` returns stdout bytes only (``b""`` at end of stream); stderr is
    kept in ``stderr_tail`` (the last ``stderr_tail_bytes`` bytes).
    """

    def __init__(self, attach_socket: Any, *, stderr_tail_bytes: int = DEFAULT_STDERR_TAIL) -> None:
        self._holder = attach_socket  # keeps the SDK's response (TLS) alive
        self._sock: socket.socket = _underlying_socket(attach_socket)
        self._sock.settimeout(None)
        self._demux = StreamDemultiplexer()
        self._pending = bytearray()
        self._stderr_tail = bytearray()
        self._stderr_limit = stderr_tail_bytes
        self._eof = False

    @classmethod
    def attach(cls, api: Any, container: str, **kwargs: Any) -> AttachedStream:
        """Attach to ``container``'s stdin, stdout and stderr (call before start)."""
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        return cls(api.attach_socket(container, params=params), **kwargs)

    def fileno(self) -> int:
        """For ``select``; readable does not promise stdout bytes (may be stderr)."""
        return self._sock.fileno()

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close_stdin(self) -> None:
        """End the container's stdin; we can still read what it writes."""
        with contextlib.suppress(OSError):  # already closed by the other side
            self._sock.shutdown(socket.SHUT_WR)

    @property
    def stderr_tail(self) -> bytes:
        return bytes(self._stderr_tail)

    def read(self, max_bytes: int = 65536, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` of stdout; ``b""`` at end of stream.

        Raises ``TimeoutError`` when nothing arrived on stdout in ``timeout``.
        """
        while not self._pending and not self._eof:
            if timeout is not None:
                ready, _, _ = select.select([self._sock], [], [], timeout)
                if not ready:
                    raise TimeoutError("no output from the container")
            self._receive()
        out = bytes(self._pending[:max_bytes])
        del self._pending[:max_bytes]
        return out

    def read_exactly(self, size: int, timeout: float | None = None) -> bytes:
        """Exactly ``size`` stdout bytes; ``EOFError`` if the stream ends first."""
        chunks = bytearray()
        while len(chunks) < size:
            piece = self.read(size - len(chunks), timeout)
            if not piece:
                raise EOFError(f"attach stream ended after {len(chunks)} of {size} bytes")
            chunks += piece
        return bytes(chunks)

    def read_all(self, timeout: float | None = None) -> bytes:
        """Every stdout byte until the container closes its output."""
        chunks = bytearray()
        while piece := self.read(timeout=timeout):
            chunks += piece
        return bytes(chunks)

    def _receive(self) -> None:
        data = self._sock.recv(65536)
        if not data:
            self._eof = True
            return
        for stream, piece in self._demux.feed(data):
            if stream == STDERR:
                self._stderr_tail += piece
                del self._stderr_tail[: -self._stderr_limit or None]
            else:
                self._pending += piece

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            close = getattr(self._holder, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> AttachedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _underlying_socket(attach_socket: Any) -> socket.socket:
    """The real socket under the SDK's ``SocketIO`` (unix, tcp) or itself (https, ssh)."""
    inner = getattr(attach_socket, "_sock", attach_socket)
    if not hasattr(inner, "sendall") or not hasattr(inner, "shutdown"):
        raise TypeError(f"pytest-isolate: cannot use attach socket of type {type(inner).__name__}")
    return inner  # type: ignore[no-any-return]
