"""Source text for a generated hostile test that forges frames on its channel.

A target does not know which of its descriptors is the channel, so it writes
one well-formed frame to every descriptor it has. Found from every test
directory, as ``project_runner`` is (``tests/conftest.py``).
"""

from __future__ import annotations

#: Defines ``spray_frame(message)`` in a generated test module.
SPRAY_FRAME = '''
import json as _json, os as _os, struct as _struct


def spray_frame(message):
    """One frame to every descriptor this target has: one of them is its channel."""
    body = _json.dumps(message).encode()
    data = _struct.pack(">I", len(body)) + body
    for fd in _os.listdir("/proc/self/fd"):
        try:
            _os.write(int(fd), data)
        except OSError:
            pass
'''
