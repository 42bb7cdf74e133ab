"""What the channel tests' generated projects share: how a hostile test finds the channel.

The runs themselves go through ``project_runner``.
"""

from __future__ import annotations

#: Put at the top of a hostile test module: how a test finds the channel's objects.
#: A hostile test can read our source and walk its own stack; so do these.
FIND_CHANNEL = '''
import os, struct, sys, time
from pytest_isolate import isolate
from pytest_isolate.wire.frames import encode_frame
from pytest_isolate.wire.shm import HEAD_OFFSET, TAIL_OFFSET, DATA_OFFSET, ring_slices

def local(name):
    frame = sys._getframe()
    while frame is not None:
        if name in frame.f_locals and frame.f_locals[name] is not None:
            return frame.f_locals[name]
        frame = frame.f_back
    raise LookupError(name)

def signal(fd, value=1):
    os.write(fd, value.to_bytes(8, "little"))

def saturate(fd):
    try:
        os.read(fd, 8)
    except BlockingIOError:
        pass
    signal(fd, 2**64 - 2)

def wait_consumed(ring):
    """Until the broker has read everything published so far (its tail reached our head)."""
    deadline = time.monotonic() + 10
    while tail(ring) < head(ring) and time.monotonic() < deadline:
        time.sleep(0.001)

def head(ring):
    return struct.unpack_from("<Q", ring.region, HEAD_OFFSET)[0]

def set_head(ring, value):
    struct.pack_into("<Q", ring.region, HEAD_OFFSET, value)

def tail(ring):
    return struct.unpack_from("<Q", ring.region, TAIL_OFFSET)[0]

def warning_frame(text):
    return encode_frame({"type": "warning", "message": text, "category": "UserWarning",
                         "filename": "hostile.py", "lineno": 1, "when": "runtest"})
'''
