"""How long a jail takes: fork to a ready, privilege-dropped test process. Printed, not asserted."""

from __future__ import annotations

import os
import statistics
import sys
import time

import pytest
from conftest import HostTree

from pytest_isolate.jail import enter_jail, python_dirs
from pytest_isolate.target import steps


def _fork_to_ready_ms(config: object, jailed: bool) -> float:
    read_end, write_end = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if jailed:
                enter_jail(config, {write_end})  # type: ignore[arg-type]
            steps.drop_privileges(*steps.unprivileged_ids())
            steps.set_no_new_privs()
            os.write(write_end, b"r")
        finally:
            os._exit(0)
    os.close(write_end)
    os.read(read_end, 1)
    elapsed = (time.perf_counter() - started) * 1000
    os.close(read_end)
    os.waitpid(pid, 0)
    return elapsed


def test_fork_to_ready_time(host_tree: HostTree, capsys: pytest.CaptureFixture[str]) -> None:
    python_dirs()  # computed once by the broker, inherited by every fork
    config = host_tree.config()
    plain = statistics.median(_fork_to_ready_ms(config, False) for _ in range(20))
    jailed = statistics.median(_fork_to_ready_ms(config, True) for _ in range(20))
    with capsys.disabled():
        sys.stderr.write(
            f"\njail fork-to-ready median of 20: {jailed:.2f} ms "
            f"(plain fork {plain:.2f} ms, jail adds {jailed - plain:.2f} ms)\n"
        )
