"""The engine pool on one machine: one engine against three reached over ssh, and its overheads.

On one 2-core machine a pool cannot be faster than the local engine: the
three engines share the same two cores, and each is reached over ssh (a
process per connection, the project copied into each container). What this
measures is what the pool itself costs, with real engines
(``scripts/engine-hosts``: a dockerd and an sshd per network namespace):

- 200 container tests under ``-n 3``, on the local engine alone and spread
  over the pool of three (each xdist worker's container lands on another
  engine), rounds interleaved, medians;
- the scheduler's own cost per container: one ``choose`` (it asks every
  engine for its count of our running containers);
- failing over: how long it takes to find that an engine is gone
  (``still_answers`` on a stopped engine), and what a run of 12 fresh tests
  loses when an engine is stopped under one of them, against the same run
  undisturbed.

The simulated curves at 100 and 1000 engines are ``scale_model.py``'s.

Usage (root: it starts the engine hosts, and stops them at the end)::

    python benchmarks/engine_pool.py            # run, rewrite its part of docs/benchmarks.md
    python benchmarks/engine_pool.py --no-write
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import DOCS, REPO, machine, replace_section

SCRIPT = REPO / "scripts" / "engine-hosts"
RUN = Path("/run/pytest-isolate-engine-hosts")
HOSTS = 3
TESTS = 200
FAILOVER_TESTS = 12

WHERE_IT_GOES = """\
Where the pool's time goes (`-v` start-up steps, one container): over ssh a
container is ready in 1.4 s against 0.6 s on the local engine: creating it
0.25 s, copying the project and the injected packages in 0.46 s (a local
engine bind-mounts them), starting it 0.20 s, the agent's hello and
collection as locally. Each engine is reached through one ssh master
connection; before it, each of the SDK's six or so connections per
container paid ssh's handshake (0.3 s here). Each xdist worker also opens
the three engines itself. A lost engine costs its running test and 0.36 s to
find it gone; the run with a loss is no slower than without (the lost
test's sleep was cut short)."""

MANY = """
import pytest
from pytest_isolate import isolate

@pytest.mark.parametrize("n", range({count}))
@isolate("container")
def test_many(n):
    assert n >= 0
"""

FRESH = """
import time
import pytest
from pytest_isolate import isolate

@pytest.mark.parametrize("n", range({count}))
@isolate("container", fresh=True)
def test_fresh(n):
    if n == {victim}:
        time.sleep(4)
"""


def hosts_env() -> dict[str, str]:
    subprocess.run([str(SCRIPT), "start", str(HOSTS)], check=True, capture_output=True)
    printed = subprocess.run([str(SCRIPT), "env"], check=True, capture_output=True, text=True)
    env = dict(os.environ)
    for line in printed.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


def pytest_run(project: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    started = time.perf_counter()
    done = subprocess.run([*command, *args], cwd=project, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return seconds, done.stdout + done.stderr


def spread(project: Path, env: dict[str, str], rounds: int) -> dict[str, float]:
    pool = "--isolate-engines=" + env["PYTEST_ISOLATE_ENGINE_HOSTS"]
    rows = {"one local engine": (), "pool of three over ssh": (pool,)}
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name, args in rows.items():
            seconds, output = pytest_run(project, env, "-n", "3", *args)
            if f"{TESTS} passed" not in output:
                raise RuntimeError(f"{name}: the run failed:\n{output[-2000:]}")
            samples[name].append(seconds)
    return {name: statistics.median(values) for name, values in samples.items()}


def choose_cost(env: dict[str, str]) -> float:
    """Median milliseconds of one scheduling decision over the pool of three."""
    os.environ["PATH"] = env["PATH"]  # the hosts' ssh wrapper
    from pytest_isolate.container.engine_pool import EnginePool

    pool = EnginePool(env["PYTEST_ISOLATE_ENGINE_HOSTS"].split(","))
    pool.connect()
    times = []
    for _ in range(50):
        started = time.perf_counter()
        pool.choose()
        times.append(time.perf_counter() - started)
    pool.close()
    return statistics.median(times) * 1000


def loss_detection(env: dict[str, str]) -> float:
    """Seconds to find that a stopped engine is gone (a fresh connection over ssh)."""
    from pytest_isolate.container.engine_pool import EnginePool

    pool = EnginePool(env["PYTEST_ISOLATE_ENGINE_HOSTS"].split(",")[:1])
    pool.connect()
    stop_engine(1)
    time.sleep(1.0)
    started = time.perf_counter()
    why = pool.still_answers(pool.members[0])
    seconds = time.perf_counter() - started
    pool.close()
    if why is None:
        raise RuntimeError("the stopped engine still answers")
    subprocess.run([str(SCRIPT), "start", str(HOSTS)], check=True, capture_output=True)
    return seconds


def stop_engine(n: int) -> None:
    os.kill(int((RUN / f"e{n}" / "dockerd.pid").read_text()), signal.SIGTERM)


def failover(root: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of 12 fresh tests over the pool, undisturbed and with an engine stopped."""
    victim = FAILOVER_TESTS // 3
    project = root / "failover"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_fresh.py").write_text(FRESH.format(count=FAILOVER_TESTS, victim=victim))
    project.chmod(0o755)
    pool = "--isolate-engines=" + env["PYTEST_ISOLATE_ENGINE_HOSTS"]
    calm, output = pytest_run(project, env, "-p", "no:xdist", pool)
    if f"{FAILOVER_TESTS} passed" not in output:
        raise RuntimeError(f"undisturbed run failed:\n{output[-2000:]}")

    def stop_the_busy_engine() -> None:
        import docker

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for n in range(1, HOSTS + 1):
                try:
                    client = docker.DockerClient(base_url=f"unix://{RUN}/e{n}/docker.sock")
                except docker.errors.DockerException:
                    continue
                try:
                    running = client.api.containers(filters={"label": "org.pytest-isolate.run"})
                finally:
                    client.close()
                if running and os.path.exists(project / ".victim-started"):
                    time.sleep(1.0)  # the victim is asleep in it
                    stop_engine(n)
                    return
            time.sleep(0.1)

    (project / "conftest.py").write_text(
        "import pathlib\n"
        "def pytest_runtest_logstart(nodeid, location):\n"
        f"    if nodeid.endswith('[{victim}]'):\n"
        "        pathlib.Path(__file__).with_name('.victim-started').touch()\n"
    )
    stopper = threading.Thread(target=stop_the_busy_engine, daemon=True)
    stopper.start()
    lossy, output = pytest_run(project, env, "-p", "no:xdist", pool)
    stopper.join(timeout=5)
    subprocess.run([str(SCRIPT), "start", str(HOSTS)], check=True, capture_output=True)
    if f"{FAILOVER_TESTS - 1} passed" not in output or "lost during this test" not in output:
        raise RuntimeError(f"the run with a lost engine went otherwise:\n{output[-3000:]}")
    return calm, lossy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    env = hosts_env()
    try:
        with tempfile.TemporaryDirectory(prefix="isolate-pool-bench-") as tmp:
            root = Path(tmp)
            root.chmod(0o755)
            project = root / "many"
            project.mkdir()
            (project / "pytest.ini").write_text("[pytest]\n")
            (project / "test_many.py").write_text(MANY.format(count=TESTS))
            project.chmod(0o755)
            medians = spread(project, env, args.rounds)
            choose_ms = choose_cost(env)
            detect = loss_detection(env)
            calm, lossy = failover(root, env)
    finally:
        subprocess.run([str(SCRIPT), "stop"], check=False, capture_output=True)
    one, three = medians["one local engine"], medians["pool of three over ssh"]
    lines = [
        "| run | wall time | / one local engine |",
        "| --- | ---: | ---: |",
        f"| {TESTS} container tests, `-n 3`, one local engine | {one:.1f} s | 1.00 |",
        f"| the same over the pool of three (ssh) | {three:.1f} s | {three / one:.2f} |",
        "",
        "| pool overhead | measured |",
        "| --- | ---: |",
        f"| one scheduling decision (`choose`: three engines asked) | {choose_ms:.1f} ms |",
        f"| finding a stopped engine gone (`still_answers`) | {detect:.2f} s |",
        f"| {FAILOVER_TESTS} fresh tests over the pool, undisturbed | {calm:.1f} s |",
        f"| the same, an engine stopped under the 5th test (it fails, 11 pass) | {lossy:.1f} s |",
    ]
    print("\n".join(lines))
    if not args.no_write:
        body = (
            "## Engine pool on one machine\n\n"
            f"`python benchmarks/engine_pool.py` ({args.rounds} rounds, medians): real engines in"
            " network namespaces reached over ssh (`scripts/engine-hosts`). On one 2-core"
            " machine the pool cannot be faster: the three engines share its cores, and ssh adds"
            " a process per connection and a copy of the project per container. What counts here"
            " is the pool's own cost and how fast it fails over.\n\n"
            f"Machine: {machine()}.\n\n" + "\n".join(lines) + "\n\n" + WHERE_IT_GOES
        )
        replace_section(DOCS, "engine-pool", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
