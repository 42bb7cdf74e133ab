"""What the policy costs, measured on real filters (printed, never asserted: noisy)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import time

from pytest_isolate.policy import PolicySpec, compile_policy
from pytest_isolate.policy.compiler import compile_policy as cached_compile
from pytest_isolate.target.steps import set_no_new_privs

DENIED_CALLS = 2000


def test_cost_of_a_notified_denial(filtered):
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


def test_cost_of_compiling_a_policy():
    specs = [
        PolicySpec(),
        PolicySpec(preset="strict"),
        PolicySpec.from_options(allow=["@system-service"], deny=["@inet"]),
    ]
    for spec in specs:
        timings = []
        for _ in range(20):
            start = time.perf_counter()
            cached_compile.__wrapped__(spec)
            timings.append(time.perf_counter() - start)
        compiled = compile_policy(spec)
        sizes = "+".join(str(len(p) // 8) for p in compiled.programs)
        print(f"\ncompile {spec}: {statistics.median(timings) * 1e3:.2f} ms ({sizes} instructions)")


def test_cost_of_installing_a_compiled_policy():
    compiled = compile_policy(PolicySpec())
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        set_no_new_privs()
        start = time.perf_counter()
        listener = compiled.install()
        elapsed = time.perf_counter() - start
        if listener is not None:
            os.close(listener)
        os.write(write_end, json.dumps(elapsed).encode())
        os._exit(0)
    os.close(write_end)
    data = os.read(read_end, 100)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    print(f"\ninstall (notifying + baseline filter): {json.loads(data) * 1e3:.3f} ms")
