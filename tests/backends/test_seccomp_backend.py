"""The seccomp backend end to end: each claim is a hostile test in a real sandboxed target.

One pytester run holds every hostile test (the run costs one pytest start);
each test below asserts one behaviour of that run's report.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest
from project_runner import ProjectRun, run_pytest, write_project

HOSTILE = r"""
import ctypes, os, signal, socket, subprocess, threading, multiprocessing
import pytest
from pytest_isolate import isolate

libc = ctypes.CDLL(None, use_errno=True)
PORT = int(os.environ.get("LISTENER_PORT", "1"))
UNIX = os.environ.get("LISTENER_UNIX", "/nonexistent")
BROKER = os.getppid()

@isolate("seccomp")
def test_tcp_to_loopback():
    socket.create_connection(("127.0.0.1", PORT), timeout=2)

@isolate("seccomp")
def test_udp_to_loopback():
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", PORT))

@isolate("seccomp")
def test_unix_socket_connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(UNIX)

@isolate("seccomp")
def test_socket_high_bits_trick():
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(41, ctypes.c_long(2 | (1 << 32)), 1, 0)
    assert fd < 0, "socket(2 | 1 << 32) created a socket"

@isolate("seccomp")
def test_ptrace_the_broker():
    libc.ptrace(16, BROKER, 0, 0)  # PTRACE_ATTACH

@isolate("seccomp")
def test_signal_the_broker():
    os.kill(BROKER, signal.SIGTERM)

@isolate("seccomp")
def test_mount():
    libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)

@isolate("seccomp")
def test_unshare_user_namespace():
    libc.unshare(0x10000000)

@isolate("seccomp")
def test_clone_with_new_namespace_flag():
    libc.syscall(56, 0x20000000 | 17, 0, 0, 0, 0)  # clone(CLONE_NEWPID | SIGCHLD)

@isolate("seccomp")
def test_load_kernel_module():
    libc.syscall(313, -1, b"", 0)  # finit_module

@isolate("seccomp")
def test_install_second_filter():
    libc.prctl(22, 2, 0)  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER

@isolate("seccomp")
def test_catching_sigsys_does_not_help():
    signal.signal(signal.SIGSYS, lambda *a: None)
    libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)

@isolate("seccomp")
def test_read_broker_proc_entries():
    with open(f"/proc/{BROKER}/environ", "rb") as handle:
        assert b"CI_SECRET" not in handle.read()

@isolate("seccomp")
def test_env_secret_absent():
    assert "CI_SECRET" not in os.environ
    assert os.environ.get("ALLOWED_BY_ENV_OPTION") is None

@isolate("seccomp", env={"ALLOWED_BY_ENV_OPTION": "yes"})
def test_env_option_passes_values():
    assert os.environ["ALLOWED_BY_ENV_OPTION"] == "yes"

@isolate("seccomp", policy="strict")
def test_exec_under_strict():
    subprocess.run(["/bin/true"])

@isolate("seccomp")
def test_ordinary_work(tmp_path):
    (tmp_path / "f").write_text("x")
    assert subprocess.run(["/bin/true"]).returncode == 0
    t = threading.Thread(target=lambda: None); t.start(); t.join()
    a, b = multiprocessing.Pipe()
    a.send("ping"); assert b.recv() == "ping"
    assert os.getuid() != 0

@isolate("seccomp", fail_on_violation=False)
def test_caught_violation_allowed_when_asked():
    with pytest.raises(PermissionError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)

@isolate("seccomp", on_violation="kill")
def test_on_violation_kill():
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("SHOULD NOT BE REACHED")

@isolate("process", seccomp="default")
def test_process_backend_with_layered_policy():
    socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
"""


@pytest.fixture(scope="module")
def loopback_listeners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A TCP listener on loopback and a Unix socket the tests would love to reach."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    unix_path = str(tmp_path_factory.mktemp("sock") / "broker.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    unix.listen()
    os.chmod(unix_path, 0o777)
    os.chmod(os.path.dirname(unix_path), 0o755)
    accepted: list[object] = []
    stop = threading.Event()

    def accept(sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept())
            except OSError:
                continue

    threads = [threading.Thread(target=accept, args=(s,), daemon=True) for s in (tcp, unix)]
    for thread in threads:
        thread.start()
    yield tcp.getsockname()[1], unix_path
    stop.set()
    for thread in threads:
        thread.join()
    tcp.close()
    unix.close()
    assert not accepted, "a sandboxed test reached a loopback listener"


@pytest.fixture(scope="module")
def hostile_run(
    tmp_path_factory: pytest.TempPathFactory, loopback_listeners: tuple[int, str]
) -> ProjectRun:
    port, unix_path = loopback_listeners
    env = {"LISTENER_PORT": str(port), "LISTENER_UNIX": unix_path, "CI_SECRET": "hunter2"}
    project = tmp_path_factory.mktemp("seccomp-project")
    write_project(project, {"test_hostile.py": HOSTILE})
    return run_pytest(project, env=env, xdist=False)


@pytest.mark.parametrize(
    ("test", "named"),
    [
        ("test_tcp_to_loopback", "socket(AF_INET"),
        ("test_udp_to_loopback", "socket(AF_INET, SOCK_DGRAM"),
        ("test_unix_socket_connect", "socket(AF_UNIX"),
        ("test_exec_under_strict", "execve"),
        ("test_on_violation_kill", "socket(AF_INET"),
        ("test_process_backend_with_layered_policy", "socket(AF_INET6"),
    ],
)
def test_denied_syscall_fails_the_test_and_is_named(
    hostile_run: ProjectRun, test: str, named: str
) -> None:
    line = hostile_run.summary_line(test)
    assert line.startswith("FAILED"), line
    assert "forbidden syscall" in hostile_run.output
    assert named in hostile_run.output


@pytest.mark.parametrize(
    ("test", "named"),
    [
        ("test_ptrace_the_broker", "ptrace"),
        ("test_mount", "mount"),
        ("test_unshare_user_namespace", "unshare"),
        ("test_clone_with_new_namespace_flag", "clone"),
        ("test_load_kernel_module", "finit_module"),
        ("test_install_second_filter", "prctl"),
        ("test_catching_sigsys_does_not_help", "mount"),
    ],
)
def test_baseline_syscall_kills_the_target(hostile_run: ProjectRun, test: str, named: str) -> None:
    line = hostile_run.summary_line(test)
    assert line.startswith("FAILED"), line
    assert "always-on baseline" in line or "forbidden syscall" in line, line


def test_a_violation_says_how_to_allow_it_or_only_report_it(hostile_run: ProjectRun) -> None:
    report = hostile_run.report_of("test_tcp_to_loopback")
    assert "to allow it: policy='permissive'" in report
    assert "fail_on_violation=False" in report


def test_a_baseline_kill_says_it_cannot_be_loosened(hostile_run: ProjectRun) -> None:
    report = hostile_run.report_of("test_mount")
    assert "the baseline cannot be loosened" in report and "--no-isolate" in report


def test_socket_high_bits_trick_is_denied(hostile_run: ProjectRun) -> None:
    assert hostile_run.outcome("test_socket_high_bits_trick") == "FAILED"
    assert "socket(" in hostile_run.output


def test_signal_to_the_broker_cannot_reach_it(hostile_run: ProjectRun) -> None:
    # In its own PID namespace the broker's pid is not the broker: the kill fails or misses.
    line = hostile_run.summary_line("test_signal_the_broker")
    assert hostile_run.ret != 0 and "passed" in hostile_run.lines[-1]
    assert "Terminated" not in hostile_run.output, line


def test_broker_proc_entries_are_not_readable(hostile_run: ProjectRun) -> None:
    line = hostile_run.summary_line("test_read_broker_proc_entries")
    assert line.startswith("FAILED"), line
    assert "hunter2" not in hostile_run.output


@pytest.mark.parametrize(
    "test",
    [
        "test_env_secret_absent",
        "test_env_option_passes_values",
        "test_ordinary_work",
        "test_caught_violation_allowed_when_asked",
    ],
)
def test_ordinary_and_allowed_tests_pass(hostile_run: ProjectRun, test: str) -> None:
    assert hostile_run.outcome(test) == "PASSED"


def test_on_violation_kill_stops_the_test_at_the_syscall(hostile_run: ProjectRun) -> None:
    assert "SHOULD NOT BE REACHED" not in hostile_run.output


def test_summary_counts_violations(hostile_run: ProjectRun) -> None:
    assert "attempted forbidden syscalls" in hostile_run.backend_summary("seccomp")
