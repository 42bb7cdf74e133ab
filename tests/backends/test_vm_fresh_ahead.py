"""A fresh guest is started while the test before it runs, and one that dies meanwhile is
replaced.

Under ``isolate_prefork`` (the default) the broker starts the next two tests'
fresh guests before the current test runs: a thread sees each through its
checkpoint and its agent's hello, then asks for the collection, so the
guests boot on the other core. Side by side with ``--isolate-no-prefork``:
the same outcomes, a guest per test (each its own kernel), and the next two
tests' guests already running while the one before reports. A guest started
ahead that dies before its test is replaced by a new one for that test.
"""

from __future__ import annotations

import json
from pathlib import Path

from project_runner import ProjectRun, run_pytest, write_project

# In the broker only (SEEN_FILE is not passed into guests): its QEMU children when
# test_v[0]'s result is reported, and each test's guest boot id from its output.
CONFTEST = """
    import json, os, signal

    def _qemu_children():
        found = []
        for task in os.listdir(f"/proc/{os.getpid()}/task"):
            with open(f"/proc/{os.getpid()}/task/{task}/children") as fh:
                found += [int(pid) for pid in fh.read().split()]
        qemus = []
        for pid in found:
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    if fh.read().startswith("qemu-system"):
                        qemus.append(pid)
            except OSError:
                pass
        return sorted(qemus)  # pids grow: the last is the newest guest

    def pytest_runtest_logreport(report):
        path = os.environ.get("SEEN_FILE")
        if not path or report.when != "call":
            return
        seen = json.load(open(path)) if os.path.exists(path) else {"boot_ids": []}
        seen["boot_ids"].append(report.capstdout.strip())
        if report.nodeid.endswith("[0]"):
            qemus = _qemu_children()
            seen["guests_at_first_report"] = len(qemus)
            if os.environ.get("KILL_NEWEST") and len(qemus) > 1:
                os.kill(qemus[-1], signal.SIGKILL)  # test_v[2]'s guest, started ahead
        with open(path, "w") as fh:
            json.dump(seen, fh)
"""

TESTS = """
    import pytest
    from pytest_isolate import isolate

    @pytest.mark.parametrize("n", range(3))
    @isolate("vm", fresh=True)
    def test_v(n):
        print(open("/proc/sys/kernel/random/boot_id").read().strip())
"""


def _run(tmp_path: Path, *args: str, kill_newest: bool = False) -> tuple[ProjectRun, dict]:
    project = write_project(tmp_path, {"conftest.py": CONFTEST, "test_fresh.py": TESTS})
    seen_file = tmp_path.parent / f"{tmp_path.name}.seen.json"
    env = {"SEEN_FILE": str(seen_file), **({"KILL_NEWEST": "1"} if kill_newest else {})}
    run = run_pytest(project, "-p", "no:randomly", *args, env=env, xdist=False)
    return run, json.loads(seen_file.read_text())


def test_the_next_two_fresh_guests_run_while_the_first_test_reports(tmp_path: Path) -> None:
    ahead, seen_ahead = _run(tmp_path / "ahead")
    plain, seen_plain = _run(tmp_path / "plain", "--isolate-no-prefork")
    for run in (ahead, plain):
        assert "3 passed" in run.output, run.output
    # A fresh guest is gone before its test is reported; the next two already run.
    assert seen_ahead["guests_at_first_report"] == 2
    assert seen_plain["guests_at_first_report"] == 0
    for seen in (seen_ahead, seen_plain):
        assert len(set(seen["boot_ids"])) == 3  # a kernel of its own for every test


def test_a_guest_that_died_ahead_of_its_test_is_replaced(tmp_path: Path) -> None:
    run, seen = _run(tmp_path, kill_newest=True)
    assert "3 passed" in run.output, run.output
    assert len(set(seen["boot_ids"])) == 3
