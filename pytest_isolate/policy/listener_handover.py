"""The child's last restriction step: load the filters and hand the listener over.

Shared by forked targets (the broker services the listener) and by the
agent's children inside a container or VM (the agent services it). The
child keeps no copy of the listener: a test holding it could answer its own
notifications.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from pytest_isolate.wire.frames import encode_frame

#: The frame a child sends once its filters are loaded (with the listener fd, if any).
SANDBOXED_FRAME = "sandboxed"


def install_in_child(compiled: Any, channel: socket.socket) -> None:
    """Load ``compiled`` (a ``LoadablePolicy``), send the listener over ``channel``, close it."""
    listener = compiled.install()
    frame = encode_frame({"type": SANDBOXED_FRAME, "listener": listener is not None})
    if listener is None:
        channel.sendall(frame)
        return
    try:
        socket.send_fds(channel, [frame], [listener])
    finally:
        os.close(listener)
