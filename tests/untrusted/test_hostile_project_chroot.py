"""The hostile project with ``--isolate-untrusted=chroot``: contained by a namespace jail.

Real parts: a real broker subprocess, a real jail (namespaces, pivot_root,
uid nobody, seccomp), a real loopback listener on the host, a real secret
file under /root. One run for the module; the checks share it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from untrusted_hostile import NETRC_TOKEN, SECRET, HostileRun, hostile_project

ROOT_SECRET = "root-only-secret-4d19e6"

#: One more attack: a file only root can read on the host, and the broker's environment.
TEST_ROOT = """
import os

def test_read_root_secret():
    try:
        print("root secret:", open({path!r}).read())
    except OSError as exc:
        print("root secret unreadable:", type(exc).__name__)
    print("in /root:", sorted(os.listdir("/root")))
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                print("environ of", pid, open("/proc/" + pid + "/environ").read())
            except OSError as exc:
                print("environ of", pid, "unreadable:", type(exc).__name__)
"""


@pytest.fixture(scope="module")
def chroot_run() -> Iterator[HostileRun]:
    handle, secret_path = tempfile.mkstemp(prefix="ut-chroot-secret-", dir="/root")
    try:
        os.write(handle, ROOT_SECRET.encode())
        os.close(handle)
        os.chmod(secret_path, 0o600)
        with hostile_project() as project:
            (project.project / "test_root.py").write_text(TEST_ROOT.format(path=secret_path))
            yield project.run("--isolate-untrusted=chroot", front_door=True)
    finally:
        os.unlink(secret_path)


def test_chroot_no_project_code_runs_on_the_host(chroot_run: HostileRun) -> None:
    assert chroot_run.evidence == set(), chroot_run.output[-3000:]


def test_chroot_ci_secrets_never_reach_the_jail(chroot_run: HostileRun) -> None:
    assert chroot_run.outcome("test_read_secret") == "PASSED"  # it ran, and found nothing
    assert SECRET not in chroot_run.output
    assert NETRC_TOKEN not in chroot_run.output


def test_chroot_a_root_only_file_is_absent_from_the_jail(chroot_run: HostileRun) -> None:
    assert chroot_run.outcome("test_read_root_secret") == "PASSED"
    assert ROOT_SECRET not in chroot_run.output
    assert "root secret unreadable: FileNotFoundError" in chroot_run.output
    assert "in /root: ['.pyenv']" in chroot_run.output or "in /root: []" in chroot_run.output


def test_chroot_the_jailed_processes_cannot_read_the_brokers_environment(
    chroot_run: HostileRun,
) -> None:
    # PID 1 of the jail is a fork of the broker (root): its environ stays closed to uid nobody.
    assert "environ of 1 unreadable: PermissionError" in chroot_run.output


def test_chroot_tests_cannot_write_the_host_or_the_project(chroot_run: HostileRun) -> None:
    assert chroot_run.outcome("test_write_host") == "FAILED"
    assert chroot_run.outcome("test_write_project") == "FAILED"
    assert "Read-only file system" in chroot_run.output
    assert not chroot_run.project_written


def test_chroot_has_no_network_though_a_mark_asks_for_it(chroot_run: HostileRun) -> None:
    assert chroot_run.outcome("test_network") == "FAILED"
    assert "ConnectionRefusedError" in chroot_run.output  # the jail's own, empty loopback
    assert chroot_run.heard == []
    assert "test_attacks.py::test_network: backend 'container': runs in 'chroot'" in (
        chroot_run.output
    )


def test_chroot_report_is_honest_and_neutralised(chroot_run: HostileRun) -> None:
    assert chroot_run.ret == 1
    assert chroot_run.outcome("test_fails_honestly") == "FAILED"
    assert "6 failed, 3 passed" in chroot_run.output
    assert "\x1b" not in chroot_run.output
    assert "test_escape_in_name[\\x1b]0;pwned\\x07\\x1b[2J]" in chroot_run.output
    assert "a namespace jail on the host's root (uid nobody)" in chroot_run.output


def test_chroot_the_broker_survives_a_kill_attempt(chroot_run: HostileRun) -> None:
    # The only root process the test sees is the jail's PID 1: signalling it is refused.
    assert chroot_run.outcome("test_kill_broker") == "FAILED"
    assert "PermissionError: [Errno 1] Operation not permitted" in chroot_run.output
    assert "9 tests run there, target started 1 time(s)" in chroot_run.output


def test_chroot_leaves_no_process_behind(chroot_run: HostileRun) -> None:
    """The jail's PID 1 carries the broker's command line (it is a fork of it)."""
    leftovers = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if chroot_run.base_name.encode() in cmdline:
            leftovers.append(cmdline)
    assert leftovers == []
