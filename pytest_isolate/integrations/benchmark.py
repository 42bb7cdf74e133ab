"""pytest-benchmark: a benchmark run in a target counts as one run in the broker.

The target sends its test's timings (``target.benchmark_results``, checked on
arrival by ``wire.benchmark_frames``). Here they become one of
pytest-benchmark's own ``Metadata`` objects, named after the test the
broker ran, and join the list pytest-benchmark keeps on the config, from
which it prints its table and writes ``--benchmark-json``, ``--benchmark-save``
and its comparisons at the session's end, as for a plain run.

What describes the machine (``machine_info`` in its JSON) is the broker's:
pytest-benchmark writes it once, where it runs.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_isolate.wire.benchmark_frames import BenchmarkRecord


def add_benchmark(item: pytest.Item, record: BenchmarkRecord | None) -> None:
    """Add a target's checked benchmark to pytest-benchmark's results in this process."""
    session = getattr(item.config, "_benchmarksession", None)
    if (
        record is None
        or session is None
        or not isinstance(getattr(session, "benchmarks", None), list)
    ):
        return
    from pytest_benchmark.stats import Metadata

    callspec = getattr(item, "callspec", None)
    fixture = SimpleNamespace(
        name=item.name,
        fullname=item.nodeid,
        group=record.group,
        param=None if callspec is None else callspec.id,
        params=None if callspec is None else callspec.params,
        extra_info=dict(record.extra_info),
        cprofile_stats=None,
        has_error=record.has_error,
    )
    metadata = Metadata(fixture, record.iterations, dict(record.options))
    for seconds in record.data:
        metadata.stats.update(seconds)
    session.benchmarks.append(metadata)
