"""A denied call answered by the broker: every one is counted, and its cost printed.

Compiling and loading a filter are measured in ``benchmarks/restriction_steps.py``.
"""

from __future__ import annotations

import contextlib
import socket
import time

from pytest_isolate.policy import PolicySpec

DENIED_CALLS = 2000


def test_every_notified_denial_is_counted(filtered):
    def deny_many() -> float:
        start = time.perf_counter()
        for _ in range(DENIED_CALLS):
            with contextlib.suppress(PermissionError):
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        return (time.perf_counter() - start) / DENIED_CALLS

    outcome = filtered(PolicySpec(), deny_many)
    per_call_us = outcome.result["ok"] * 1e6
    print(f"\nnotified denial answered by the broker: {per_call_us:.1f} us per call")
    [violation] = outcome.violations
    assert violation.count == DENIED_CALLS
