"""The cgroup v2 process tree, proved in a real QEMU guest that mounts the unified hierarchy.

This host runs cgroup v1, so the guest's own kernel provides cgroup v2 with
every controller. One boot: ``cgroup_v2_guest.py`` runs as the guest's PID 1,
drives the tree and a real ``pytest --isolate=process`` run of ``PROJECT``,
and answers with its findings; each test below asserts one claim of them.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from escaper_tests import SANDBOXED_FORK_LOOPS, SETSID_DAEMON, fork_bomb

from pytest_isolate.vm import Guest, VMConfig

REPO = str(Path(__file__).resolve().parents[2])
GUEST_SCRIPT = Path(__file__).with_name("cgroup_v2_guest.py")

CONFTEST = """
    import os

    BROKER = os.getpid()  # conftest is imported in the broker, before any fork
    PIDS = os.environ["PID_DIR"]

    def _alive(pid):
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def pytest_runtest_logreport(report):
        # In the broker, as the daemon test's report arrives: is its daemon dead yet?
        if os.getpid() != BROKER or report.when != "call":
            return
        if report.nodeid.endswith("::test_double_forked_setsid_daemon"):
            pid = int(open(os.path.join(PIDS, "daemon")).read())
            with open(os.path.join(PIDS, "daemon-at-report"), "w") as handle:
                handle.write("alive" if _alive(pid) else "dead")
"""

PROJECT = (
    """
    import os, time
    from pytest_isolate import isolate

    PIDS = os.environ["PID_DIR"]

    def record(name):
        with open(os.path.join(PIDS, name), "a") as f:
            f.write(f"{os.getpid()}\\n")

    def own_leaf_file(name):
        line = open("/proc/self/cgroup").read().strip()
        return open("/sys/fs/cgroup" + line[len("0::"):] + "/" + name).read().strip()

    @isolate(pids_limit=33, mem_limit="96M")
    def test_the_target_is_in_its_brokers_leaf_with_its_limits():
        assert open("/proc/self/cgroup").read().strip() == f"0::/pytest-isolate/{os.getppid()}"
        limits = [own_leaf_file(n) for n in ("pids.max", "memory.max", "memory.swap.max")]
        assert limits == ["33", str(96 << 20), "0"]

"""
    + fork_bomb(60)
    + """

"""
    + SETSID_DAEMON
    + """

    @isolate(mem_limit="100M")
    def test_fills_a_tmpfs_past_its_memory_limit():
        import tempfile
        with open(os.path.join(tempfile.gettempdir(), "flood"), "wb") as handle:
            for _ in range(300):
                handle.write(b"x" * (1 << 20))

"""
    + SANDBOXED_FORK_LOOPS
    + """

    def test_the_next_target_has_the_default_limits_again():
        assert [own_leaf_file(n) for n in ("pids.max", "memory.max")] == ["4096", "max"]
"""
)


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = tmp_path_factory.mktemp("cgroup-v2-project")
    project.chmod(0o755)
    files = {"pytest.ini": "[pytest]\n", "conftest.py": CONFTEST, "test_tree.py": PROJECT}
    for name, text in files.items():
        (project / name).write_text(textwrap.dedent(text).lstrip("\n"))
    config = VMConfig(
        command=(sys.executable, str(GUEST_SCRIPT), str(project)),
        shares=(REPO, str(project)),
        env=(("PATH", "/usr/bin:/bin"), ("LC_ALL", "C.UTF-8"), ("PYTHONPATH", REPO)),
        cwd=REPO,
    )
    with Guest.start(config) as guest:
        guest.wait_ready()
        guest.channel.settimeout(240)
        data = b""
        while chunk := guest.channel.recv(65536):
            data += chunk
        console = guest.console_tail()
    lines = data.decode("utf-8", "replace").strip().splitlines()
    assert lines, f"no findings from the guest; console:\n{console}"
    answer: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in answer, answer["error"] + console
    print(f"\npytest run in the guest: {answer['run']['seconds']:.1f} s")
    return answer


@pytest.mark.parametrize("backend", ["seccomp", "chroot"])
def test_seccomp_and_chroot_targets_are_bounded_by_the_leaf_too(
    findings: dict[str, Any], backend: str
) -> None:
    """The broker moves them, and what they forked in their own steps, into its leaf."""
    name = f"test_a_{backend}_targets_fork_bomb_is_bounded_too"
    assert outcome(findings, name) == "PASSED", findings["run"]["output"][-4000:]


def outcome(findings: dict[str, Any], name: str) -> str:
    """PASSED, FAILED, ... of one test of the guest's run, from its ``-rA`` summary."""
    output = findings["run"]["output"]
    found = re.search(rf"^(PASSED|FAILED|ERROR) \S*::{re.escape(name)}(?:$| )", output, re.M)
    assert found is not None, output[-4000:]
    return found.group(1)


def test_the_broker_picks_the_unified_hierarchy_and_writes_the_limits(
    findings: dict[str, Any],
) -> None:
    assert outcome(findings, "test_the_target_is_in_its_brokers_leaf_with_its_limits") == "PASSED"
    assert outcome(findings, "test_the_next_target_has_the_default_limits_again") == "PASSED"


def test_a_fork_bomb_is_stopped_by_the_pids_limit(findings: dict[str, Any]) -> None:
    assert outcome(findings, "test_fork_bomb_is_bounded") == "PASSED"
    # 39 besides the target; one more may fork in the moment the target itself exits
    assert 0 < len(findings["recorded"]["bomb"]) <= 40


def test_memory_past_the_limit_is_reported_as_an_oom_kill(findings: dict[str, Any]) -> None:
    output = findings["run"]["output"]
    assert outcome(findings, "test_fills_a_tmpfs_past_its_memory_limit") == "FAILED"
    assert "killed by the OOM killer (limit 100 MiB) during call" in output, output[-3000:]


def test_the_run_goes_on_after_the_bomb_and_the_oom_kill(findings: dict[str, Any]) -> None:
    assert findings["run"]["ret"] == 1  # the OOM-killed test, and it alone, failed
    assert "1 failed, 6 passed" in findings["run"]["output"]


def test_a_setsid_daemon_is_dead_when_its_tests_report_comes(findings: dict[str, Any]) -> None:
    assert outcome(findings, "test_double_forked_setsid_daemon") == "PASSED"
    assert findings["daemon_at_report"] == "dead"


def test_nothing_of_the_bomb_or_the_daemon_is_alive_after_the_run(
    findings: dict[str, Any],
) -> None:
    assert findings["alive_after_run"] == []


def test_no_cgroup_of_ours_remains_after_the_run(findings: dict[str, Any]) -> None:
    assert findings["groups_after_run"] == []


def test_a_stale_leaf_of_a_dead_broker_is_removed_by_the_next_run(
    findings: dict[str, Any],
) -> None:
    stale = findings["stale"]
    assert stale["leaf_before"] and stale["alive_before"] == stale["members"] != []
    assert not stale["leaf_after"]
    assert stale["alive_after"] == []


def test_the_freeze_fallback_kills_a_running_fork_bomb_and_a_daemon(
    findings: dict[str, Any],
) -> None:
    freeze = findings["freeze"]
    assert freeze["bombs"] >= 16 and freeze["daemons"] == 1
    assert freeze["emptied"] and freeze["procs_after"] == [] and freeze["alive"] == []
    assert freeze["freeze_after"] == "0"  # thawed: the leaf is usable by the next target
    assert findings["groups_after_freeze_check"] == []
