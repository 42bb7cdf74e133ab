"""An interrupted run leaves nothing of ours; the next run reaps what a killed one left.

Each run starts a long-running isolated test (with a setsid daemon) in one
backend (process, seccomp, chroot, container), waits until it is running,
then interrupts the broker with Ctrl-C or SIGTERM, or kills it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_isolate.container.reaping import LABEL_BROKER_PID
from pytest_isolate.supervision.cgroup_v2 import find_unified_mount
from pytest_isolate.supervision.tree import CGROUP_ROOT, GROUP_NAME

PROJECT = """
import os, pathlib, time
from pytest_isolate import isolate

# Beside the project: the same path in every target (spawned ones re-import this module)
MARKS = pathlib.Path(__file__).resolve().parent.parent / "marks"

@isolate({backend!r}{extra})
def test_hangs():
    (MARKS / "running").write_text(str(os.getpid()))
    if os.fork() == 0:  # a daemon too, to prove the whole tree goes
        os.setsid()
        time.sleep(300)
        os._exit(0)
    time.sleep(300)
"""

# The marks directory must be reachable and writable from inside each target.
BACKENDS = {
    "process": "",
    "seccomp": "",
    "chroot": ", writable=[str(MARKS)]",
    "container": ", image='pytest-isolate/debian:bookworm', mounts=[f'{MARKS}:{MARKS}:rw']",
}


def _our_processes(run_dir: str) -> list[int]:
    """Processes working in this run's directory, or carrying it in their environment.

    The working directory finds targets whose environment was scrubbed
    (seccomp, chroot) and those in containers (the project is at the same path).
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if cwd.startswith(run_dir) or run_dir.encode() in environ:
            found.append(int(entry))
    return found


def _containers_of(broker_pid: int) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_BROKER_PID}={broker_pid}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.split()


def _start_run(tmp_path: Path, backend: str) -> tuple[subprocess.Popen[str], Path]:
    project = tmp_path / "project"
    marks = tmp_path / "marks"
    project.mkdir(exist_ok=True)
    marks.mkdir()
    os.chmod(marks, 0o777)  # targets run as nobody
    for directory in (tmp_path, *tmp_path.parents):
        if directory == Path("/"):
            break
        os.chmod(directory, os.stat(directory).st_mode | 0o011)
    (project / "test_hang.py").write_text(PROJECT.format(backend=backend, extra=BACKENDS[backend]))
    (project / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "MARK_DIR": str(marks)}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return proc, marks


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never started")
        time.sleep(0.05)


def _nothing_left(broker_pid: int, marks: Path) -> list[str]:
    problems = []
    deadline = time.monotonic() + 15
    while True:
        problems = []
        alive = _our_processes(str(marks.parent))
        if alive:
            problems.append(f"processes alive: {alive}")
        if _containers_of(broker_pid):
            problems.append(f"containers left: {_containers_of(broker_pid)}")
        groups = [CGROUP_ROOT / controller / GROUP_NAME for controller in ("freezer", "pids")]
        unified = find_unified_mount()
        if unified is not None:  # cgroup v2
            groups.append(unified / GROUP_NAME)
        for group in groups:
            if (group / str(broker_pid)).exists():
                problems.append(f"cgroup {group}/{broker_pid} left")
        scratch = [p for p in os.listdir("/tmp") if p.startswith(f"pytest-isolate-{broker_pid}-")]
        if scratch:
            problems.append(f"scratch left: {scratch}")
        if f"pytest-isolate-{broker_pid}" in Path("/proc/self/mountinfo").read_text():
            problems.append("mounts left")
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.2)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_nothing(tmp_path: Path, how: str, backend: str) -> None:
    proc, marks = _start_run(tmp_path, backend)
    try:
        _wait_for(marks / "running", 60)
        proc.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _nothing_left(proc.pid, marks) == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_killed_run_is_reaped_by_the_next_run(tmp_path: Path, backend: str) -> None:
    proc, marks = _start_run(tmp_path, backend)
    _wait_for(marks / "running", 60)
    proc.kill()
    proc.wait()
    # Targets die with the broker (parent-death signal); cgroups and scratch
    # directories of a killed broker are removed by the next run's start.
    later = tmp_path / "later"
    later.mkdir()
    (later / "test_one.py").write_text(
        "from pytest_isolate import isolate\n@isolate()\ndef test_one():\n    pass\n"
    )
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=later,
        check=True,
        capture_output=True,
    )
    assert _nothing_left(proc.pid, marks) == []


# Ctrl-C in the broker's narrowest window: its target forked and started, its
# supervisor not made yet. The conftest sends the interrupt from that point.
INTERRUPT_BEFORE_SUPERVISION = """
import os, signal
from pytest_isolate.backends import forked

_supervisor = forked.TargetSupervisor

def _interrupted(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    return _supervisor(*args, **kwargs)

forked.TargetSupervisor = _interrupted
"""


@pytest.mark.parametrize("backend", ["chroot", "process", "seccomp"])
def test_ctrl_c_before_supervision_ends_the_target_too(tmp_path: Path, backend: str) -> None:
    """The target is killed and reaped although no supervisor ever watched it.

    Left unreaped inside a namespace holder's PID namespace (seccomp, chroot),
    it once hung the run for ever: the holder's end waited for its reaping,
    and the broker waited for the holder's end.
    """
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "conftest.py").write_text(INTERRUPT_BEFORE_SUPERVISION)
    proc, marks = _start_run(tmp_path, backend)
    try:
        assert proc.wait(timeout=60) == pytest.ExitCode.INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _nothing_left(proc.pid, marks) == []
