"""The agent's end of the broker link: frames in on one fd, frames out on another.

The agent moves its real stdin/stdout to private descriptors before pytest
starts (pytest's fd capture would otherwise swap them for temporary files),
and talks only through this class. Reads are bounded by a small frame limit:
the broker sends requests, never bulk data.
"""

from __future__ import annotations

import os
import select
from collections import deque
from typing import Any, Deque, Dict, List

from pytest_isolate.wire.frames import FrameDecoder, FrameLimits, encode_frame

#: The broker's messages are small; a huge one is a bug, not a request.
BROKER_LIMITS = FrameLimits(
    max_frame_bytes=8 * 1024 * 1024, max_total_bytes=1 << 62, max_frames=1 << 62, max_depth=16
)


class BrokerGone(Exception):
    """The broker closed its end (it exited or was killed): the agent must end too."""


class AgentChannel:
    """Blocking and non-blocking frame I/O on two descriptors."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self._decoder = FrameDecoder(BROKER_LIMITS)
        self._ready: Deque[Dict[str, Any]] = deque()
        self._eof = False

    def send(self, message: Dict[str, Any]) -> None:
        data = memoryview(encode_frame(message))
        while data:
            try:
                written = os.write(self.out_fd, data)
            except BrokenPipeError:
                raise BrokerGone("broker closed the channel") from None
            data = data[written:]

    def _fill(self) -> None:
        data = os.read(self.in_fd, 65536)
        if not data:
            self._eof = True
            return
        self._ready.extend(self._decoder.feed(data))

    def receive(self) -> Dict[str, Any]:
        """The next message; raises BrokerGone at end of stream."""
        while not self._ready:
            if self._eof:
                raise BrokerGone("broker closed the channel")
            self._fill()
        return self._ready.popleft()

    def receive_ready(self) -> List[Dict[str, Any]]:
        """Messages available without blocking (call when ``in_fd`` polled readable)."""
        readable, _, _ = select.select([self.in_fd], [], [], 0)
        if readable and not self._eof:
            self._fill()
        if self._eof and not self._ready:
            raise BrokerGone("broker closed the channel")
        messages = list(self._ready)
        self._ready.clear()
        return messages

    @property
    def has_buffered(self) -> bool:
        return bool(self._ready)

    def pending_message(self) -> Dict[str, Any] | None:
        return self._ready.popleft() if self._ready else None
