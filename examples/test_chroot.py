"""chroot: a namespace jail that sees only the system, Python and the project (read-only)."""

import os
import pathlib

import pytest

from pytest_isolate import isolate

HERE = pathlib.Path(__file__).resolve()


@isolate("chroot")
def test_home_directories_are_invisible():
    assert not os.path.exists("/root/.ssh")
    assert not os.path.exists("/var/run/docker.sock")


@isolate("chroot")
def test_project_is_read_only_and_tmp_path_writable(tmp_path):
    with pytest.raises(OSError):
        (HERE.parent / "written-by-a-test.txt").write_text("no")
    (tmp_path / "scratch.txt").write_text("yes")


@isolate("chroot")
def test_only_own_processes_are_visible():
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    assert len(pids) <= 3  # the jail's init, the test, nothing of the host
