"""vm: a QEMU guest with its own kernel; one guest serves every test, each in a fresh fork.

The first test pays the boot (seconds under TCG, the terminal shows each
step and the accelerator chosen); further tests cost a fork in the guest.
"""

import os
import pathlib
import platform
import sys

import pytest

from pytest_isolate import isolate

HERE = pathlib.Path(__file__).resolve()

pytestmark = isolate("vm")


def test_runs_on_the_guest_kernel_with_the_host_python():
    print("guest kernel", platform.release(), "python", sys.version.split()[0])
    assert os.path.exists("/pi/busybox")  # the guest's init left its busybox here


def test_no_network_device_but_loopback():
    assert os.listdir("/sys/class/net") == ["lo"]


def test_host_home_is_invisible_and_project_read_only(tmp_path):
    assert not os.path.exists("/root/.ssh")
    with pytest.raises(OSError):
        (HERE.parent / "written-by-a-test.txt").write_text("no")
    (tmp_path / "scratch.txt").write_text("yes")


@isolate("vm", memory="512M", fresh=True)
def test_a_guest_of_its_own():
    assert os.getuid() != 0  # tests run unprivileged inside the guest too


@isolate("vm", seccomp={"policy": "default", "fail_on_violation": False})
def test_a_seccomp_policy_inside_the_guest():
    import socket  # the guest's kernel enforces the filter the broker compiled

    with pytest.raises(PermissionError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


@isolate("vm", arch="arm64")
def test_on_an_arm64_kernel():
    """Debian's arm64 kernel and userland under qemu-system-aarch64 (fetched once)."""
    print("guest", platform.machine(), platform.release())
    assert platform.machine() == "aarch64"
