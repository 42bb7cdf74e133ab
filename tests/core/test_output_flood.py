"""A target printing 300 MB cannot bloat the broker: output is cut to a tail with a note."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

FLOOD_MB = 300

CONFTEST = """
    import os, resource

    def pytest_unconfigure(config):
        # Runs in the broker only: targets end with os._exit and never unconfigure.
        with open(os.environ["RSS_FILE"], "w") as f:
            f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""

FLOOD = f"""
    import sys
    from pytest_isolate import isolate

    @isolate()
    def test_floods_stdout():
        line = "flood " * 170 + "\\n"  # 1 KiB
        for _ in range({FLOOD_MB} * 1024):
            sys.stdout.write(line)
        print("LAST LINE OF THE FLOOD")
        assert False, "fails so that its output is shown"

    def test_after_the_flood():
        pass
"""


@pytest.fixture(scope="module")
def rss_file(module_dir: Path) -> Path:
    return module_dir / "broker-maxrss-kib"


@pytest.fixture(scope="module")
def run(module_dir: Path, rss_file: Path) -> ProjectRun:
    write_project(module_dir, {"conftest.py": CONFTEST, "test_flood.py": FLOOD})
    return run_pytest(module_dir, env={"RSS_FILE": str(rss_file)})


def test_broker_memory_stays_far_below_the_flood(run: ProjectRun, rss_file: Path) -> None:
    max_rss_mib = int(rss_file.read_text()) / 1024
    assert max_rss_mib < FLOOD_MB / 3, f"broker max RSS {max_rss_mib:.0f} MiB"


def test_report_keeps_the_tail_of_the_output_with_a_truncation_note(run: ProjectRun) -> None:
    report = run.report_of("test_floods_stdout")
    assert "Captured stdout call" in report
    assert "characters truncated]" in report
    assert "LAST LINE OF THE FLOOD" in report
    assert len(report) < 2 * 1024 * 1024


def test_session_goes_on_after_the_flood(run: ProjectRun) -> None:
    assert run.outcome("test_floods_stdout") == "FAILED"
    assert run.outcome("test_after_the_flood") == "PASSED"
