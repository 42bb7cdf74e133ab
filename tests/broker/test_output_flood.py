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


QUIET = """
    from pytest_isolate import isolate

    @isolate()
    def test_floods_stdout():
        print("LAST LINE OF THE FLOOD")
        assert False, "fails so that its output is shown"

    def test_after_the_flood():
        pass
"""


@pytest.fixture(scope="module")
def quiet_rss_mib(tmp_path_factory: pytest.TempPathFactory) -> float:
    """The same broker's max RSS when its target prints one line: what the flood is compared to."""
    root = tmp_path_factory.mktemp("quiet")
    rss_file = root / "broker-maxrss-kib"
    write_project(root, {"conftest.py": CONFTEST, "test_flood.py": QUIET})
    run_pytest(root, env={"RSS_FILE": str(rss_file)})
    return int(rss_file.read_text()) / 1024


def test_broker_memory_stays_far_below_the_flood(
    run: ProjectRun, rss_file: Path, quiet_rss_mib: float
) -> None:
    max_rss_mib = int(rss_file.read_text()) / 1024
    grown = max_rss_mib - quiet_rss_mib
    assert grown < FLOOD_MB / 10, (
        f"broker max RSS {max_rss_mib:.0f} MiB after a {FLOOD_MB} MB flood, "
        f"{quiet_rss_mib:.0f} MiB after one line"
    )


def test_report_keeps_the_tail_of_the_output_with_a_truncation_note(run: ProjectRun) -> None:
    report = run.report_of("test_floods_stdout")
    assert "Captured stdout call" in report
    assert "characters truncated]" in report
    assert "LAST LINE OF THE FLOOD" in report
    assert len(report) < 2 * 1024 * 1024


def test_session_goes_on_after_the_flood(run: ProjectRun) -> None:
    assert run.outcome("test_floods_stdout") == "FAILED"
    assert run.outcome("test_after_the_flood") == "PASSED"
