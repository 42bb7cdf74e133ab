"""Run a generated project through pytest in a fresh interpreter, for the channel tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

_OUTER_ONLY = ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST", "PYTEST_PLUGINS")

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


@dataclass
class ProjectRun:
    ret: int
    output: str

    def outcome(self, name: str) -> str:
        found = re.search(
            rf"^(PASSED|FAILED|ERROR|SKIPPED) \S*::{re.escape(name)}(?:$| )", self.output, re.M
        )
        if found is None:
            raise AssertionError(f"no summary line for {name!r} in:\n{self.output[-4000:]}")
        return found.group(1)

    def report_of(self, name: str) -> str:
        header = re.search(rf"^_+ {re.escape(name)} _+$", self.output, re.M)
        if header is None:
            raise AssertionError(f"no report block for {name!r} in:\n{self.output[-4000:]}")
        rest = self.output[header.end() :]
        end = re.search(r"^(?:_{3,} .* _{3,}|={3,} .* ={3,})$", rest, re.M)
        return rest[: end.start()] if end else rest


def run_project(
    root: Path, source: str, *args: str, ini: str = "[pytest]\n", timeout: float = 300
) -> ProjectRun:
    """``python -m pytest -rA ARGS`` on one generated module, with our own ini only."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(ini)
    (root / "test_generated.py").write_text(textwrap.dedent(source).lstrip("\n"))
    env = {k: v for k, v in os.environ.items() if k not in _OUTER_ONLY}
    env["COLUMNS"] = "300"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    return ProjectRun(completed.returncode, completed.stdout.decode("utf-8", "replace"))
