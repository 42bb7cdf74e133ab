"""A forked target's test is reported at its ``done``, while the target still exits
(``isolate_prefork``): its exit is collected before the next test starts, what a test left
behind is still killed before its report, and a target that does not exit is killed and
named in the run's summary."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from frame_forgery import SPRAY_FRAME
from process_checks import process_alive, wait_all_dead
from project_runner import run_pytest, write_project

FORKED = ["process", "seccomp", "chroot"]

#: In the broker, as each teardown report arrives: is the test's target reaped yet, and is
#: what it started still alive? ``pids/`` holds what the tests wrote (the process backend
#: shares the broker's PID namespace, so these pids are the broker's too).
SEEN_AT_REPORT = """
    import os
    from pathlib import Path

    BROKER = os.getpid()  # conftest is imported in the broker, before any fork

    def _state(pid):
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return "reaped"

    def pytest_runtest_logreport(report):
        if os.getpid() != BROKER or report.when != "teardown":
            return
        name = report.nodeid.rsplit("::", 1)[1]
        target = _state(int(Path("pids", f"{name}.target").read_text()))
        seen = ["target=" + ("reaped" if target == "reaped" else "not-reaped")]
        left = Path("pids", f"{name}.left")
        if left.exists():
            state = _state(int(left.read_text()))
            seen.append("left=" + ("gone" if state in ("Z", "reaped") else "alive"))
        Path("pids", f"{name}.seen").write_text(" ".join(seen))
"""

TESTS = """
    import os, subprocess
    from pathlib import Path
    import pytest

    pytestmark = pytest.mark.isolate("process")

    def _note(kind, pid):
        Path("pids", f"{os.environ['PYTEST_CURRENT_TEST'].split('::')[1].split()[0]}.{kind}") \\
            .write_text(str(pid))

    #: Touched pages to tear down make the exit slow (tens of ms): the broker reads
    #: ``done`` long before the target is gone, however busy the machine is.
    HEAP = 400 * 1024 * 1024

    def test_1_alone():
        _note("target", os.getpid())
        pytest.heap = b"x" * HEAP

    def test_2_leaves_a_process():
        _note("target", os.getpid())
        _note("left", subprocess.Popen(["sleep", "60"]).pid)

    def test_3_alone_again():
        _note("target", os.getpid())
        pytest.heap = b"x" * HEAP
"""


def _seen(project: Path) -> dict[str, str]:
    return {
        path.name.split(".")[0]: path.read_text()
        for path in sorted((project / "pids").glob("*.seen"))
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="the process tree is a cgroup only for root")
def test_a_test_is_reported_before_its_target_is_reaped_and_after_what_it_left_is_dead(
    tmp_path: Path,
) -> None:
    write_project(tmp_path, {"conftest.py": SEEN_AT_REPORT, "test_ends.py": TESTS})
    (tmp_path / "pids").mkdir()
    pipelined = run_pytest(tmp_path)
    assert pipelined.ret == 0, pipelined.output[-3000:]
    assert _seen(tmp_path) == {
        # reported at its done: the target still exits (or waits to be reaped)
        "test_1_alone": "target=not-reaped",
        # it left a process: the usual way, which kills the tree before the report
        "test_2_leaves_a_process": "target=reaped left=gone",
        "test_3_alone_again": "target=not-reaped",
    }
    left = int((tmp_path / "pids" / "test_2_leaves_a_process.left").read_text())
    targets = [int(p.read_text()) for p in (tmp_path / "pids").glob("*.target")]
    assert wait_all_dead([left, *targets], 0) == []
    assert not re.search(r"ended badly|after finishing", pipelined.output)

    for path in (tmp_path / "pids").iterdir():
        path.unlink()
    fresh = run_pytest(tmp_path, "--isolate-no-prefork")
    assert fresh.ret == 0, fresh.output[-3000:]
    assert set(_seen(tmp_path).values()) == {"target=reaped", "target=reaped left=gone"}


#: A hostile test that forges the end of its own protocol, then does not end.
FORGES_ITS_END = (
    SPRAY_FRAME
    + """
import os, time
from pathlib import Path
import pytest

pytestmark = pytest.mark.isolate("{backend}")


def test_1_forges_its_end(request):
    item, config = request.node, request.config
    for when in ("call", "teardown"):
        report = pytest.TestReport(item.nodeid, item.location, {{}}, "passed", None, when)
        data = config.hook.pytest_report_to_serializable(config=config, report=report)
        spray_frame({{"type": "report", "report": data}})
    spray_frame({{"type": "done", "pid": os.getpid()}})
    if "{backend}" == "chroot":  # while the broker waits for its exit
        time.sleep(0.3)
        Path("/tmp/forged-leftover").write_text("for the next test")
    time.sleep(60)


def test_2_runs_next():
    # The jail's /tmp is emptied once the target is dead, not at its forged end.
    assert not Path("/tmp/forged-leftover").exists()
"""
)


@pytest.mark.parametrize("backend", FORKED)
def test_a_target_that_forges_its_done_and_stays_is_killed_before_the_next_test(
    tmp_path: Path, backend: str
) -> None:
    write_project(tmp_path, {"test_forges.py": FORGES_ITS_END.format(backend=backend)})
    run = run_pytest(tmp_path, timeout=50)
    # A test can lie about its own outcome; it cannot outlive its turn.
    assert "2 passed" in run.output, run.output[-3000:]
    assert run.seconds < 30
    assert (
        f"isolate {backend}: the target of test_forges.py::test_1_forges_its_end "
        "did not exit within 1 s of finishing, and was killed"
    ) in run.output
    assert "1 ended badly after finishing (--isolate-no-prefork" in run.output
    assert not [pid for pid in _sleepers(tmp_path) if process_alive(pid)]


def _sleepers(project: Path) -> list[int]:
    """Processes whose working directory is ``project``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(project):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
