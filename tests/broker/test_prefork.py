"""A forked target made while the previous test runs (``isolate_prefork``) changes nothing a
user sees: outcomes, report lines and warnings are those of a target forked when its test
starts, and of a plain run; it waits outside the running test's process tree, and it is gone
when the run stops early."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from process_checks import process_alive
from project_runner import PYTEST, ProjectRun, run_pytest, write_project

FORKED = ["process", "seccomp", "chroot"]

#: Tests whose outcome depends on what their fork inherited: warnings filters of the
#: test before, the test's own env=, tmp_path, a test that failed or crashed before.
HAZARDS = """
    import os, warnings
    import pytest
    from pytest_isolate import isolate

    pytestmark = pytest.mark.isolate("{backend}")

    @pytest.mark.filterwarnings("error")
    def test_01_a_warning_is_an_error_here():
        with pytest.raises(UserWarning):
            warnings.warn("strict", UserWarning)

    def test_02_and_only_a_warning_here():
        warnings.warn("lenient", UserWarning)

    @pytest.mark.filterwarnings("ignore::UserWarning")
    def test_03_ignored_here():
        warnings.warn("hidden", UserWarning)

    def test_04_shown_again():
        warnings.warn("shown", UserWarning)

    @isolate("{backend}", env={{"WHICH": "a"}})
    def test_05_env_a():
        assert os.environ.get("WHICH", "a") == "a"  # plain: no env=

    @isolate("{backend}", env={{"WHICH": "b"}})
    def test_06_env_b():
        assert os.environ.get("WHICH", "b") == "b"

    def test_07_fails():
        assert 1 == 2

    def test_08_passes_after_a_failure(tmp_path):
        (tmp_path / "made").write_text("x")

    def test_09_tmp_path_again(tmp_path):
        assert not (tmp_path / "made").exists()
"""

CRASH = """
    import os
    import pytest

    pytestmark = pytest.mark.isolate("{backend}")

    def test_10_crashes():
        os.abort()

    def test_11_passes_after_a_crash():
        pass
"""


def _outcomes(run: ProjectRun) -> list[str]:
    """Each test's -rA line and the final count, without timings or our own lines."""
    lines = [
        re.sub(r" in [\d.]+s", "", line).strip()
        for line in run.lines
        if re.match(r"(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", line)
        or re.match(r"=+ .*(passed|failed).* =+$", line)
    ]
    return sorted(line for line in lines if "[isolate" not in line)


def _warnings_summary(run: ProjectRun) -> list[str]:
    section = run.output.split("warnings summary", 1)[1].split("-- Docs:", 1)[0]
    return [line.strip() for line in section.splitlines() if line.strip()]


@pytest.mark.parametrize("backend", FORKED)
def test_prepared_targets_give_the_outcomes_of_fresh_ones_and_of_a_plain_run(
    tmp_path: Path, backend: str
) -> None:
    write_project(
        tmp_path,
        {
            "test_hazards.py": HAZARDS.format(backend=backend),
            "test_crash.py": CRASH.format(backend=backend),
        },
    )
    prepared = run_pytest(tmp_path)
    fresh = run_pytest(tmp_path, "--isolate-no-prefork")
    assert _outcomes(prepared) == _outcomes(fresh)
    assert _warnings_summary(prepared) == _warnings_summary(fresh)
    assert "2 failed, 9 passed" in prepared.output, prepared.output[-3000:]
    # A plain run cannot survive os.abort(); the rest must match it line for line.
    plain = run_pytest(tmp_path, "test_hazards.py", "--no-isolate")
    isolated = run_pytest(tmp_path, "test_hazards.py")
    assert _outcomes(isolated) == _outcomes(plain)
    assert _warnings_summary(isolated) == _warnings_summary(plain)
    shown = "\n".join(_warnings_summary(isolated))
    assert "UserWarning: lenient" in shown and "UserWarning: shown" in shown
    assert "strict" not in shown and "hidden" not in shown


#: Run in a target of the process backend: what the kernel says about the broker's
#: children and about the test's own cgroup while the test runs.
TREE = """
    import os, time
    from pathlib import Path
    import pytest

    pytestmark = pytest.mark.isolate("process")

    def _children(pid):
        found = []
        for task in os.listdir(f"/proc/{pid}/task"):
            found += Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        return sorted(int(p) for p in found)

    def _cgroup_members():
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _number, controllers, path = line.split(":", 2)
            if controllers in ("pids", ""):
                base = "/sys/fs/cgroup/pids" if controllers == "pids" else "/sys/fs/cgroup"
                text = Path(base + path, "cgroup.procs").read_text()
                return sorted(int(p) for p in text.split())
        raise AssertionError("no pids cgroup")

    @pytest.mark.parametrize("n", range(3))
    def test_tree(n):
        # The broker forks the next target right after it starts this one, which
        # took its restriction steps ahead: give that fork its moment when one is due.
        deadline = time.monotonic() + (5 if n < 2 and os.environ.get("SPARE_DUE") else 0)
        while True:
            others = [p for p in _children(os.getppid()) if p != os.getpid()]
            if others or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        print(f"TREE others={len(others)} members={_cgroup_members() == [os.getpid()]}")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the process tree is a cgroup only for root")
def test_a_prepared_target_waits_outside_the_running_tests_cgroup(tmp_path: Path) -> None:
    write_project(tmp_path, {"test_tree.py": TREE})
    prepared = run_pytest(tmp_path, "-s", env={"SPARE_DUE": "1"})
    fresh = run_pytest(tmp_path, "-s", "--isolate-no-prefork")
    assert prepared.ret == fresh.ret == 0, prepared.output[-3000:]
    # While tests 1 and 2 run, the next one's target is already forked and waits;
    # the last test has none after it. The cgroup holds the running test alone.
    assert re.findall(r"TREE others=(\d) members=(\w+)", prepared.output) == [
        ("1", "True"),
        ("1", "True"),
        ("0", "True"),
    ]
    assert re.findall(r"TREE others=(\d) members=(\w+)", fresh.output) == [("0", "True")] * 3


STOPS = """
    import os
    from pathlib import Path
    import pytest

    pytestmark = pytest.mark.isolate("{backend}")

    def test_1_fails_and_stops_the_run():
        if "{backend}" == "process":
            Path("broker.pid").write_text(str(os.getppid()))
        assert False

    @pytest.mark.parametrize("n", range(5))
    def test_2_never_runs(n):
        pass
"""


@pytest.mark.parametrize("backend", FORKED)
def test_a_run_stopped_by_x_leaves_no_prepared_target(tmp_path: Path, backend: str) -> None:
    write_project(tmp_path, {"test_stops.py": STOPS.format(backend=backend)})
    run = run_pytest(tmp_path, "-x")
    assert "1 failed" in run.output and "passed" not in run.output, run.output[-3000:]
    left = [pid for pid in _processes_in(tmp_path) if process_alive(pid)]
    assert left == []
    if backend == "process":  # in the others, the target sees another PID namespace
        broker = (tmp_path / "broker.pid").read_text()
        assert not list(Path("/tmp").glob(f"pytest-isolate-{broker}-*"))


def _processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is ``directory`` (a target's is its project's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == directory:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


#: A session fixture of the broker whose teardown waits for its helper to see EOF on a
#: pipe: a target forked ahead holds a copy of the pipe's write end until it starts.
PIPE_FIXTURE = """
    import subprocess, sys
    import pytest

    @pytest.fixture(scope="session")
    def helper():
        proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                stdin=subprocess.PIPE)
        yield proc
        proc.stdin.close()
        proc.wait(timeout=20)  # returns once no process holds the write end

    def test_0_plain_uses_the_helper(helper):
        assert helper.poll() is None

    @pytest.mark.isolate("{backend}")
    def test_1_fails_and_stops_the_run():
        assert False

    @pytest.mark.isolate("{backend}")
    @pytest.mark.parametrize("n", range(3))
    def test_2_never_runs(n):
        pass
"""


@pytest.mark.parametrize("backend", FORKED)
def test_the_broker_tears_down_its_fixtures_with_no_target_waiting(
    tmp_path: Path, backend: str
) -> None:
    write_project(tmp_path, {"test_pipe.py": PIPE_FIXTURE.format(backend=backend)})
    run = run_pytest(tmp_path, "-x", timeout=60)
    assert "1 failed, 1 passed" in run.output, run.output[-3000:]
    assert "TimeoutExpired" not in run.output
    assert run.seconds < 15


SLEEPS = """
    import time
    import pytest

    pytestmark = pytest.mark.isolate("{backend}")

    def test_1_sleeps():
        print("RUNNING", flush=True)  # -s: through the broker to its stdout
        time.sleep(60)

    @pytest.mark.parametrize("n", range(3))
    def test_2_waits(n):
        pass
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
@pytest.mark.parametrize("backend", FORKED)
def test_a_broker_killed_or_interrupted_leaves_no_waiting_target(
    tmp_path: Path, backend: str, how: signal.Signals
) -> None:
    """The waiting target dies with its broker (parent-death signal), and a Ctrl-C ends it."""
    write_project(tmp_path, {"test_sleeps.py": SLEEPS.format(backend=backend)})
    broker = subprocess.Popen(
        [*PYTEST, "-p", "no:cacheprovider", "-q", "-s"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        assert broker.stdout is not None
        seen = b""
        deadline = time.monotonic() + 60
        while b"RUNNING" not in seen and time.monotonic() < deadline:
            if select.select([broker.stdout], [], [], 1.0)[0]:
                chunk = os.read(broker.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
        assert b"RUNNING" in seen, seen[-2000:]
        waiting = [pid for pid in _processes_in(tmp_path) if pid != broker.pid]
        assert len(waiting) >= 2  # the sleeping test's target and the next one's
        os.killpg(broker.pid, how)
        broker.wait(timeout=30)
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(process_alive, _processes_in(tmp_path))):
        time.sleep(0.05)
    assert [pid for pid in _processes_in(tmp_path) if process_alive(pid)] == []


#: Two jail configurations (network or not) share a chroot run; a plain test between
#: them means the last test's target is forked when it starts, not ahead.
TWO_JAILS = """
    import os
    from pytest_isolate import isolate

    @isolate("chroot")
    def test_1_leaves_a_file_in_its_jails_tmp():
        open("/tmp/leftover", "w").close()

    @isolate("chroot", network=True)
    def test_2_in_another_jail():
        pass

    def test_3_plain():
        pass

    @isolate("chroot")
    def test_4_finds_its_jails_tmp_empty():
        assert not os.path.exists("/tmp/leftover")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a jail is shared between tests only for root")
def test_each_test_leaves_its_own_jail_emptied(tmp_path: Path) -> None:
    """After a test, its jail's /tmp is emptied, even when the next test's target went to
    another jail while it ran."""
    write_project(tmp_path, {"test_jails.py": TWO_JAILS})
    run = run_pytest(tmp_path)
    assert "4 passed" in run.output, run.output[-3000:]
