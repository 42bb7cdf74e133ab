"""pytest-benchmark inside a target: send the timings of the test's benchmark to the broker.

pytest-benchmark appends each benchmark's results to a list in the process
that ran it, and writes its table, its JSON and its saved runs from that
list when the session ends. A target's list dies with the target, so the
benchmark a test ran here is sent as a frame (``wire.benchmark_frames``) and
the broker adds it to its own list (``integrations.benchmark``).

Costs nothing for other tests: only a test that uses the ``benchmark``
fixture, in a run where pytest-benchmark is active, is looked at.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pytest_isolate.wire.benchmark_frames import MAX_ROUNDS, benchmark_frame


class BenchmarkResults:
    """The benchmarks pytest-benchmark held before the test, to tell the test's own apart."""

    def __init__(self, session: Any, before: int) -> None:
        self._session = session
        self._before = before

    @classmethod
    def begin(cls, item: Any) -> BenchmarkResults | None:
        """Note where pytest-benchmark's list stands, for a test that benchmarks; else None."""
        if "benchmark" not in getattr(item, "fixturenames", ()):
            return None
        # pytest-benchmark keeps its session on the config; its own hooks reach it so.
        session = getattr(item.config, "_benchmarksession", None)
        if session is None or not isinstance(getattr(session, "benchmarks", None), list):
            return None
        return cls(session, len(session.benchmarks))

    def frames(self) -> Iterator[dict[str, Any]]:
        """The test's benchmark (pytest-benchmark allows one per test), as a frame."""
        for metadata in self._session.benchmarks[self._before :][:1]:
            frame = benchmark_frame(metadata)
            frame["data"] = frame["data"][:MAX_ROUNDS]
            if frame["data"]:
                yield frame
