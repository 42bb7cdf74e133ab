"""seccomp: the test keeps working, but cannot reach the network or the kernel's attack surface."""

import contextlib
import os
import socket
import subprocess

import pytest

from pytest_isolate import isolate


@isolate("seccomp")
def test_ordinary_work_is_allowed(tmp_path):
    (tmp_path / "out.txt").write_text("ok")
    assert subprocess.run(["true"]).returncode == 0
    assert os.getuid() != 0  # dropped to an unprivileged user


@isolate("seccomp", fail_on_violation=False)
def test_network_is_denied_and_named():
    with pytest.raises(PermissionError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


@isolate("seccomp")
def test_ci_secrets_are_not_in_the_environment():
    assert not any(name.endswith(("TOKEN", "SECRET", "PASSWORD")) for name in os.environ)


@pytest.mark.xfail(reason="demo: a forbidden syscall fails the test, by name", strict=True)
@isolate("seccomp")
def test_forbidden_syscall_fails_the_test_even_when_caught():
    with contextlib.suppress(PermissionError):
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
