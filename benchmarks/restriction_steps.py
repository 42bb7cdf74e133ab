"""What single restriction steps cost: a jail from fork to ready, compiling and loading a filter.

These were timing "tests" that asserted nothing; numbers belong here. Each
figure is the median of ``--rounds`` runs on this machine, printed::

    python benchmarks/restriction_steps.py
    python benchmarks/restriction_steps.py --rounds 50

Needs root (or unprivileged user namespaces) for the jail, and seccomp.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from pytest_isolate.jail import JailConfig, enter_jail, python_dirs
from pytest_isolate.policy import PolicySpec, compile_policy
from pytest_isolate.policy.compiler import compile_policy as cached_compile
from pytest_isolate.target import steps


def _in_child_ms(work: Callable[[int], None]) -> float:
    """Fork, run ``work(fd)`` in the child, which writes one byte when ready; ms to that byte."""
    read_end, write_end = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            work(write_end)
            os.write(write_end, b"r")
        finally:
            os._exit(0)
    os.close(write_end)
    os.read(read_end, 1)
    elapsed = (time.perf_counter() - started) * 1000
    os.close(read_end)
    os.waitpid(pid, 0)
    return elapsed


def jail_fork_to_ready(rounds: int) -> tuple[float, float]:
    """(plain fork, jailed fork) to a privilege-dropped process, median ms."""
    python_dirs()  # computed once by the broker, inherited by every fork
    with tempfile.TemporaryDirectory() as root:
        project = os.path.join(root, "project")
        os.mkdir(project)
        config = JailConfig(project_dir=project, tmp_dirs=(os.path.join(root, "basetemp"),))

        def ready(jailed: bool) -> Callable[[int], None]:
            def work(fd: int) -> None:
                if jailed:
                    enter_jail(config, {fd})
                steps.drop_privileges(*steps.unprivileged_ids())
                steps.set_no_new_privs()

            return work

        plain = statistics.median(_in_child_ms(ready(False)) for _ in range(rounds))
        jailed = statistics.median(_in_child_ms(ready(True)) for _ in range(rounds))
    return plain, jailed


def compile_costs(rounds: int) -> list[tuple[str, float, str]]:
    """(policy, median ms to compile uncached, instructions per program)."""
    rows = []
    for spec in (
        PolicySpec(),
        PolicySpec(preset="strict"),
        PolicySpec.from_options(allow=["@system-service"], deny=["@inet"]),
    ):
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            cached_compile.__wrapped__(spec)
            timings.append(time.perf_counter() - started)
        sizes = "+".join(str(len(p) // 8) for p in compile_policy(spec).programs)
        rows.append((str(spec), statistics.median(timings) * 1e3, sizes))
    return rows


def install_cost(rounds: int) -> float:
    """Median ms to load the default policy (notifying and baseline filters) in a child."""
    compiled = compile_policy(PolicySpec())
    samples = []
    for _ in range(rounds):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            steps.set_no_new_privs()
            started = time.perf_counter()
            listener = compiled.install()
            elapsed = time.perf_counter() - started
            if listener is not None:
                os.close(listener)
            os.write(write_end, json.dumps(elapsed).encode())
            os._exit(0)
        os.close(write_end)
        samples.append(json.loads(os.read(read_end, 100)))
        os.close(read_end)
        os.waitpid(pid, 0)
    return statistics.median(samples) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    plain, jailed = jail_fork_to_ready(rounds)
    print(f"jail fork-to-ready: {jailed:.2f} ms (plain fork {plain:.2f} ms, +{jailed - plain:.2f})")
    for spec, ms, sizes in compile_costs(rounds):
        print(f"compile {spec}: {ms:.2f} ms ({sizes} instructions)")
    print(f"install the default policy: {install_cost(rounds):.3f} ms")


if __name__ == "__main__":
    main()
