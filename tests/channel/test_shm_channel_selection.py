"""Which channel a target gets: ``channel=`` on the marker, ``--isolate-channel``, ini.

A target on the shm channel holds exactly the ring's two eventfds (and the
socket for handshakes); on the pipe channel it holds none. Read from inside
real targets of every forked backend.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

PROJECT = """
import os, socket
from pytest_isolate import isolate

def eventfds():
    names = []
    for fd in range(3, 1024):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return sum("eventfd" in name for name in names)

@isolate("process")
def test_process():
    print(f"EVENTFDS process={eventfds()}")

@isolate("process", channel="shm")
def test_marked_shm():
    print(f"EVENTFDS marked={eventfds()}")

@isolate("seccomp")
def test_seccomp():
    print(f"EVENTFDS seccomp={eventfds()}")
    socket.socket(socket.AF_INET)

@isolate("chroot")
def test_chroot():
    print(f"EVENTFDS chroot={eventfds()}")
"""


def eventfd_counts(run: ProjectRun) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"EVENTFDS (\w+)=(\d+)", run.output)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ProjectRun]:
    base: Path = tmp_path_factory.mktemp("channel_selection")
    project = {"test_generated.py": PROJECT}
    shm_ini = {**project, "pytest.ini": "[pytest]\nisolate_channel = shm\n"}

    def run(name: str, files: dict[str, str], *args: str) -> ProjectRun:
        return run_pytest(write_project(base / name, files), *args, xdist=False)

    return {
        "default": run("default", project),
        "cli": run("cli", project, "--isolate-channel=shm"),
        "ini": run("ini", shm_ini),
    }


def test_the_pipe_channel_is_the_default_and_a_marker_can_ask_for_shm(
    runs: dict[str, ProjectRun],
) -> None:
    counts = eventfd_counts(runs["default"])
    assert counts == {"process": 0, "marked": 2, "seccomp": 0, "chroot": 0}


def test_the_command_line_puts_every_forked_backend_on_shm(runs: dict[str, ProjectRun]) -> None:
    assert eventfd_counts(runs["cli"]) == {"process": 2, "marked": 2, "seccomp": 2, "chroot": 2}


def test_the_ini_option_puts_every_forked_backend_on_shm(runs: dict[str, ProjectRun]) -> None:
    assert eventfd_counts(runs["ini"]) == {"process": 2, "marked": 2, "seccomp": 2, "chroot": 2}


@pytest.mark.parametrize("which", ["default", "cli", "ini"])
def test_outcomes_and_seccomp_reports_are_the_same_on_both_channels(
    runs: dict[str, ProjectRun], which: str
) -> None:
    run = runs[which]
    assert [run.outcome(n) for n in ("test_process", "test_marked_shm", "test_chroot")] == [
        "PASSED"
    ] * 3
    assert run.outcome("test_seccomp") == "FAILED"
    assert "forbidden syscall socket(AF_INET" in run.report_of("test_seccomp")
