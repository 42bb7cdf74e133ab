"""A model of container tests spread over a pool of engines: queueing, tail latency, a lost engine.

No engine is contacted: this is a discrete-event simulation of the
scheduling policy the engine pool uses (docs/scale.md), run at sizes no test
machine has. Each engine runs as many tests at once as it reports CPUs. A
test goes to the healthy engine with the lowest load (running tests per
CPU), ties to the one with more CPUs; when every engine is full, tests wait
in the broker's queue.

Two ways of scheduling are compared:

- **one broker** sees every engine's running count exactly (a single run);
- **xdist workers** (16 brokers) each see their own targets exactly and the
  other brokers' only through the engine's count, refreshed every second:
  between refreshes they may pile onto the same engine, which then queues
  tests itself.

Losing an engine: a third of the way through, the busiest engine goes away.
Its running tests fail (as infrastructure failures, naming the engine), its
queue moves to the others, and with ``--retry`` (``--isolate-engine-retry``;
off by default) each failed test runs once more elsewhere. The model reports how many tests
failed and what the loss cost in wall time.

Usage::

    python benchmarks/scale_model.py            # run, rewrite its part of docs/benchmarks.md
    python benchmarks/scale_model.py --no-write
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import DOCS, replace_section

#: CPUs of the engines, drawn with these weights: a mixed fleet.
CPU_CHOICES = (2, 4, 8, 16)
CPU_WEIGHTS = (1, 3, 3, 1)
TESTS_PER_ENGINE = 40
#: Test durations: lognormal with this median (seconds) and shape; a heavy tail.
MEDIAN_SECONDS = 0.8
SIGMA = 0.6
WORKERS = 16
REFRESH_SECONDS = 1.0


@dataclass
class Engine:
    name: int
    cpus: int
    running: int = 0
    queued: list[int] = field(default_factory=list)
    healthy: bool = True

    @property
    def load(self) -> float:
        return (self.running + len(self.queued)) / self.cpus


@dataclass
class Outcome:
    #: no scheduler can finish sooner: all work spread perfectly, or the longest test
    bound: float
    makespan: float
    waits: list[float]
    failed: int
    busy_cpu_seconds: float
    cpus: int

    def percentile(self, p: float) -> float:
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    @property
    def utilisation(self) -> float:
        return self.busy_cpu_seconds / (self.makespan * self.cpus)


def choose(engines: list[Engine], seen: dict[int, float] | None = None) -> Engine | None:
    """The healthy engine with the lowest load (by ``seen`` loads when given), or None."""
    healthy = [engine for engine in engines if engine.healthy]
    if not healthy:
        return None
    if seen is None:
        return min(healthy, key=lambda e: (e.load, -e.cpus, e.name))
    return min(healthy, key=lambda e: (seen[e.name], -e.cpus, e.name))  # stale for xdist


def simulate(engine_count: int, *, workers: int, lose_one: bool, retry: bool, seed: int) -> Outcome:
    """One run of ``TESTS_PER_ENGINE * engine_count`` tests; returns what it cost.

    Tests wait in their broker's queue until an engine looks free to that
    broker (late binding: a test is never stuck behind a long one while
    another engine idles). A broker with a stale view may send a test to an
    engine that is in fact full; the engine then queues it.
    """
    rng = random.Random(seed)
    engines = [Engine(i, rng.choices(CPU_CHOICES, CPU_WEIGHTS)[0]) for i in range(engine_count)]
    count = TESTS_PER_ENGINE * engine_count
    durations = [rng.lognormvariate(0.0, SIGMA) * MEDIAN_SECONDS for _ in range(count)]
    total_cpus = sum(e.cpus for e in engines)
    lose_at = sum(durations) / total_cpus / 3 if lose_one else float("inf")
    events: list[tuple[float, int, str, int, int]] = []  # (time, order, kind, test, engine)
    order = 0
    now = 0.0
    waits: list[float] = []
    submitted = dict.fromkeys(range(count), 0.0)
    attempts = dict.fromkeys(range(count), 0)
    failed = 0
    busy = 0.0
    running_on: dict[int, tuple[float, int]] = {}
    queues: list[list[int]] = [[] for _ in range(workers)]
    # Each broker's view of every engine's load: exact for one broker, else refreshed.
    views = [{e.name: 0.0 for e in engines} for _ in range(workers)]

    def push(at: float, kind: str, test: int = -1, engine: int = -1) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, kind, test, engine))

    def start(test: int, engine: Engine) -> None:
        engine.running += 1
        waits.append(now - submitted[test])
        running_on[test] = (now, engine.name)
        push(now + durations[test], "done", test, engine.name)

    def dispatch(worker: int) -> None:
        queue, view = queues[worker], views[worker]
        while queue:
            if workers == 1:
                for engine in engines:
                    view[engine.name] = engine.load
            engine = choose(engines, view)
            if engine is None or view[engine.name] >= 1.0:
                return  # every engine looks full to this broker: its tests wait
            test = queue.pop(0)
            view[engine.name] += 1 / engine.cpus
            if engine.running < engine.cpus:
                start(test, engine)
            else:
                engine.queued.append(test)  # the view was stale

    for test in range(count):
        queues[test % workers].append(test)
    push(0.0, "dispatch")
    if lose_one:
        push(lose_at, "lose")
    if workers > 1:
        push(REFRESH_SECONDS, "refresh")
    while events:
        now, _, kind, test, name = heapq.heappop(events)
        if kind == "done":
            engine = engines[name]
            if running_on.get(test, (0.0, -1))[1] != name:
                continue  # a test of the lost engine: already failed
            begun, _ = running_on.pop(test)
            busy += now - begun
            engine.running -= 1
            if engine.queued:
                start(engine.queued.pop(0), engine)
            views[test % workers][name] -= 1 / engine.cpus
            dispatch(test % workers)
            continue
        if kind == "lose":
            victim = max((e for e in engines if e.healthy), key=lambda e: e.running)
            victim.healthy = False
            for t in [t for t, (_, where) in running_on.items() if where == victim.name]:
                begun, _ = running_on.pop(t)
                busy += now - begun
                failed += 1
                attempts[t] += 1
                if retry and attempts[t] < 2:
                    submitted[t] = now
                    queues[t % workers].append(t)
            for t in victim.queued:  # never started: they simply move
                queues[t % workers].append(t)
            victim.queued, victim.running = [], 0
        elif kind == "refresh":
            for view in views:
                for engine in engines:
                    view[engine.name] = engine.load
            if running_on or any(queues):
                push(now + REFRESH_SECONDS, "refresh")
        for worker in range(workers):
            dispatch(worker)
    bound = max(sum(durations) / total_cpus, max(durations))
    return Outcome(bound, now, waits, failed, busy, total_cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    lines = [
        "| engines | tests | scheduling | makespan (lower bound) | wait p50 | wait p99 "
        "| CPU use | lose one engine: failed tests | its cost in wall time |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in (int(word) for word in args.sizes.split(",")):
        for label, workers in (("one broker", 1), (f"{WORKERS} xdist workers", WORKERS)):
            runs = [
                simulate(size, workers=workers, lose_one=False, retry=True, seed=s)
                for s in range(3)
            ]
            lost = [
                simulate(size, workers=workers, lose_one=True, retry=True, seed=s) for s in range(3)
            ]
            base = statistics.median(r.makespan for r in runs)
            lines.append(
                f"| {size} | {TESTS_PER_ENGINE * size} | {label} | {base:.1f} s "
                f"({statistics.median(r.bound for r in runs):.1f} s) "
                f"| {statistics.median(r.percentile(0.5) for r in runs):.2f} s "
                f"| {statistics.median(r.percentile(0.99) for r in runs):.2f} s "
                f"| {statistics.median(r.utilisation for r in runs):.0%} "
                f"| {statistics.median(r.failed for r in lost):.0f} "
                f"| +{statistics.median(r.makespan for r in lost) - base:.1f} s |"
            )
    print("\n".join(lines))
    if not args.no_write:
        body = (
            "## Engine pool at scale (a model)\n\n"
            "`python benchmarks/scale_model.py`: a discrete-event model of the pool's "
            "scheduler (see docs/scale.md), not a measurement: "
            f"{TESTS_PER_ENGINE} tests per engine, lognormal durations (median "
            f"{MEDIAN_SECONDS} s, sigma {SIGMA}), engines of 2, 4, 8 or 16 CPUs, "
            "medians of 3 seeds. Waits are from submission to start. Losing an engine: "
            "the busiest one goes away a third of the way through; its running tests "
            "fail and run once more elsewhere, its queue moves.\n\n" + "\n".join(lines)
        )
        replace_section(DOCS, "scale-model", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
