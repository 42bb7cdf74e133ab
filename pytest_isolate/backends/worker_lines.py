"""Progress lines of an xdist worker, carried to the controller's terminal on its reports.

A worker's terminal is nobody's: xdist shows only what reaches the
controller. Its worker-to-controller events are fixed (reports, warnings,
log start and finish), so a line a worker announces ("container … ready in
1.8 s") rides on the next test report the worker sends, as a plain list of
strings, which pytest's own report serialization carries
(``pytest_report_to_serializable`` keeps a report's extra attributes). The
controller prints the lines before that report's result, named by worker.

The attribute is set by the worker's broker after a target's reports were
checked (``wire.reports`` keeps an allow-list of fields), so a target cannot
forge one.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

#: The report attribute that carries a worker's lines.
REPORT_ATTRIBUTE = "isolate_worker_lines"

_PENDING = pytest.StashKey[list[str]]()
_LOCK = threading.Lock()  # a VM's boot reports its steps from the thread that boots it


def worker_id(config: pytest.Config) -> str | None:
    """The xdist worker this process is (``gw0``), or None in a plain run or the controller."""
    workerinput = getattr(config, "workerinput", None)
    if not isinstance(workerinput, dict):
        return None
    return str(workerinput.get("workerid", "gw?"))


def hold(config: pytest.Config, line: str) -> bool:
    """Keep ``line`` for the worker's next report; False when this is not a worker."""
    worker = worker_id(config)
    if worker is None:
        return False
    with _LOCK:
        config.stash.setdefault(_PENDING, []).append(f"[{worker}] {line}")
    return True


def attach(config: pytest.Config, report: Any) -> None:
    """A worker's report takes the lines held since the last one."""
    if worker_id(config) is None:
        return
    with _LOCK:
        lines = config.stash.get(_PENDING, [])
        config.stash[_PENDING] = []
    if lines:
        setattr(report, REPORT_ATTRIBUTE, lines)


def carried(report: Any) -> list[str]:
    """The lines a worker's report carries (strings only), for the controller to print."""
    lines = getattr(report, REPORT_ATTRIBUTE, None)
    if not isinstance(lines, list):
        return []
    return [line for line in lines if isinstance(line, str)]
