"""Whether the processes a generated run left behind are gone, as seen from outside.

The runs themselves go through ``project_runner``; these checks read
``/proc`` directly, so a zombie (already killed, not yet reaped) counts as gone.
"""

from __future__ import annotations

import time
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (a zombie has already been killed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_all_dead(pids: list[int], seconds: float = 3.0) -> list[int]:
    """The pids still alive after waiting up to ``seconds`` for their reaper."""
    deadline = time.monotonic() + seconds
    alive = [p for p in pids if process_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if process_alive(p)]
    return alive
