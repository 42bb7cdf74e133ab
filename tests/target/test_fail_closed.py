"""A target whose promised layer is not in force fails closed; every test carries its receipt."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND
from project_runner import ProjectRun, run_pytest, write_project

#: A deliberately weakened broker: its targets skip loading their seccomp filter
#: (they still tell the broker they did), as a silently failing step would.
WEAKENING_CONFTEST = """
import pytest_isolate.target.sequence as sequence
from pytest_isolate.policy.listener_handover import SANDBOXED_FRAME
from pytest_isolate.wire.frames import encode_frame


def skip_the_filter(compiled, channel):
    channel.sendall(encode_frame({"type": SANDBOXED_FRAME, "listener": False}))


sequence.install_in_child = skip_the_filter
"""

WEAKENED_TESTS = """
from pytest_isolate import isolate

@isolate("seccomp")
def test_would_run_unfiltered():
    open("/tmp/pytest-isolate-fail-closed-ran", "w").write("ran")

@isolate("process")
def test_process_promises_no_filter():
    pass
"""

#: The layers each backend's receipt must name (its first words may vary by host).
#: A deliberately weakened broker: moving a target into its cgroup silently does nothing.
UNMOVED_CONFTEST = """
import pytest_isolate.supervision.cgroupfs as cgroupfs

_write = cgroupfs.write


def write(path, text):
    if path.name != "cgroup.procs":
        _write(path, text)


cgroupfs.write = write
"""

UNMOVED_TESTS = """
import pytest

@pytest.mark.isolate("{backend}")
def test_would_run_outside_its_tree():
    open("/tmp/pytest-isolate-fail-closed-{backend}", "w").write("ran")
"""

#: The forked backends' targets join the broker's cgroup (root, on this machine); a
#: container's test has at least our baseline filter.
EXPECTED = {
    "process": {"forked", "cgroup"},
    "seccomp": {"forked", "cgroup", "pidns", "uid=65534", "no-capabilities", "no_new_privs"},
    "chroot": {"forked", "cgroup", "pidns", "mntns", "no-capabilities", "no_new_privs"},
    "container": {"forked", "no-capabilities", "no_new_privs", "seccomp(2)"},
    "vm": {"forked", "no-capabilities", "no_new_privs"},
}


def test_a_target_without_its_filter_fails_before_the_test_runs(tmp_path: Path) -> None:
    marker = Path("/tmp/pytest-isolate-fail-closed-ran")
    marker.unlink(missing_ok=True)
    write_project(tmp_path, {"conftest.py": WEAKENING_CONFTEST, "test_weak.py": WEAKENED_TESTS})
    run = run_pytest(tmp_path, xdist=False)
    line = run.summary_line("test_would_run_unfiltered")
    assert line.startswith(("FAILED", "ERROR")), line
    assert "seccomp filter: the kernel says mode 0" in line, line
    assert not marker.exists(), "the test ran without its filter"
    assert run.outcome("test_process_promises_no_filter") == "PASSED"


@pytest.mark.skipif(os.geteuid() != 0, reason="the process tree is a cgroup only for root")
@pytest.mark.parametrize("backend", ["process", "seccomp", "chroot"])
def test_a_target_left_outside_its_cgroup_fails_before_the_test_runs(
    tmp_path: Path, backend: str
) -> None:
    marker = Path(f"/tmp/pytest-isolate-fail-closed-{backend}")
    marker.unlink(missing_ok=True)
    tests = UNMOVED_TESTS.format(backend=backend)
    write_project(tmp_path, {"conftest.py": UNMOVED_CONFTEST, "test_unmoved.py": tests})
    run = run_pytest(tmp_path, xdist=False)
    line = run.summary_line("test_would_run_outside_its_tree")
    assert line.startswith(("FAILED", "ERROR")), line
    assert "target could not be set up (LayerMissing: process tree: not in the cgroup" in line
    assert not marker.exists(), "the test ran outside its cgroup"


@pytest.fixture(scope="module")
def receipts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    lines = ["from pytest_isolate import isolate", ""]
    for name, args in EVERY_BACKEND.items():
        lines += [f"@isolate({args})", f"def test_{name}():", "    pass", ""]
    project = write_project(tmp_path_factory.mktemp("receipts"), {"test_each.py": "\n".join(lines)})
    project.chmod(0o755)
    junit = project.parent / f"{project.name}.junit.xml"
    run: ProjectRun = run_pytest(project, f"--junitxml={junit}", xdist=False)
    assert run.ret == 0, run.output[-3000:]
    found = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        for prop in case.iter("property"):
            if prop.get("name") == "isolate_layers":
                found[str(case.get("name"))[len("test_") :]] = set(
                    (prop.get("value") or "").split()
                )
    return found


@pytest.mark.parametrize("backend", sorted(EVERY_BACKEND))
def test_junit_keeps_a_receipt_of_the_layers_in_force(
    receipts: dict[str, set[str]], backend: str
) -> None:
    assert EXPECTED[backend] <= receipts[backend], receipts[backend]
