"""The chroot backend end to end: the classic escapes, each in a real jailed target."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

HOSTILE = r"""
import ctypes, os, signal, socket, subprocess
import pytest
from pytest_isolate import isolate

libc = ctypes.CDLL(None, use_errno=True)
SECRET = os.environ.get("SECRET_FILE", "/root/none")
BESIDE = os.environ.get("BESIDE_FILE", "/none")
PORT = int(os.environ.get("LISTENER_PORT", "1"))
HERE = os.path.dirname(os.path.abspath(__file__))
BROKER = os.getppid()
WRITABLE = os.environ.get("WRITABLE_DIR", "/none")  # read at import: the target's env is scrubbed

@isolate("chroot")
def test_read_secret_under_root():
    open(SECRET).read()

@isolate("chroot")
def test_read_file_beside_the_project():
    open(BESIDE).read()

@isolate("chroot")
def test_write_into_the_project():
    open(os.path.join(HERE, "planted.txt"), "w").write("x")

@isolate("chroot")
def test_double_chroot_escape():
    os.makedirs("/tmp/x", exist_ok=True)
    os.chroot("/tmp/x")
    for _ in range(20):
        os.chdir("..")
    os.chroot(".")
    open(SECRET).read()

@isolate("chroot")
def test_proc_root_of_pid1_and_broker():
    for pid in (1, BROKER):
        open(f"/proc/{pid}/root{SECRET}").read()

@isolate("chroot")
def test_mknod_device():
    os.mknod("/tmp/sda", 0o600 | 0o060000, os.makedev(8, 0))

@isolate("chroot")
def test_docker_socket():
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/run/docker.sock")

@isolate("chroot")
def test_tcp_to_host_loopback():
    socket.create_connection(("127.0.0.1", PORT), timeout=2)

@isolate("chroot")
def test_signal_the_broker():
    os.kill(BROKER, signal.SIGTERM)

@isolate("chroot")
def test_sethostname_stays_inside():
    socket.sethostname("pwned")

@isolate("chroot")
def test_mount():
    libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)

@isolate("chroot")
def test_new_namespace():
    libc.unshare(0x10000000)

@isolate("chroot")
def test_env_secret_absent():
    assert "CI_SECRET" not in os.environ

@isolate("chroot")
def test_ordinary_work(tmp_path):
    (tmp_path / "f").write_text("x")
    assert subprocess.run(["/bin/ls", "/"], capture_output=True).returncode == 0
    assert os.getuid() != 0
    import json, email.mime.text  # lazy imports from the interpreter's prefix

@isolate("chroot")
def test_leaves_files_behind():
    open("/tmp/left-behind", "w").write("x")
    open("/dev/shm/left-behind", "w").write("x")

@isolate("chroot")
def test_finds_nothing_an_earlier_test_left():
    assert not os.path.exists("/tmp/left-behind")
    assert not os.path.exists("/dev/shm/left-behind")
    assert socket.gethostname() == "isolate"

@isolate("chroot", writable=[WRITABLE])
def test_writable_option_opens_one_path():
    open(os.path.join(WRITABLE, "ok.txt"), "w").write("ok")
"""


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    tcp.settimeout(0)
    yield tcp.getsockname()[1]
    with pytest.raises(BlockingIOError):
        tcp.accept()  # nobody reached it
    tcp.close()


@pytest.fixture(scope="module")
def secret_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    secret = Path("/root") / f"pytest-isolate-secret-{os.getpid()}.txt"
    secret.write_text("hunter2")
    base = tmp_path_factory.mktemp("beside")
    beside = base / "beside.txt"
    beside.write_text("hunter2")
    writable = tmp_path_factory.mktemp("writable")
    os.chmod(writable, 0o777)
    yield {"SECRET_FILE": str(secret), "BESIDE_FILE": str(beside), "WRITABLE_DIR": str(writable)}
    secret.unlink()


@pytest.fixture(scope="module")
def hostile_run(
    tmp_path_factory: pytest.TempPathFactory, listener: int, secret_files: dict[str, str]
) -> ProjectRun:
    env = {**secret_files, "LISTENER_PORT": str(listener), "CI_SECRET": "hunter2"}
    project = tmp_path_factory.mktemp("chroot-project")
    write_project(project, {"test_hostile.py": HOSTILE})
    return run_pytest(project, env=env, xdist=False)


@pytest.mark.parametrize(
    "test",
    [
        "test_read_secret_under_root",
        "test_read_file_beside_the_project",
        "test_write_into_the_project",
        "test_double_chroot_escape",
        "test_proc_root_of_pid1_and_broker",
        "test_mknod_device",
        "test_docker_socket",
        "test_tcp_to_host_loopback",
        "test_signal_the_broker",
        "test_mount",
        "test_new_namespace",
    ],
)
def test_escape_attempt_fails(hostile_run: ProjectRun, test: str) -> None:
    assert hostile_run.outcome(test) == "FAILED"


def test_secret_never_appears_in_the_report(hostile_run: ProjectRun) -> None:
    assert "hunter2" not in hostile_run.output


def test_project_was_not_written(
    hostile_run: ProjectRun, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert not list(Path(tmp_path_factory.getbasetemp()).glob("chroot-project*/planted.txt"))


def test_hostname_change_stays_in_the_jail(hostile_run: ProjectRun) -> None:
    assert socket.gethostname() != "pwned"


@pytest.mark.parametrize(
    "test",
    [
        "test_env_secret_absent",
        "test_ordinary_work",
        "test_writable_option_opens_one_path",
        "test_leaves_files_behind",
        "test_finds_nothing_an_earlier_test_left",
    ],
)
def test_allowed_work_passes(hostile_run: ProjectRun, test: str) -> None:
    assert hostile_run.outcome(test) == "PASSED"


def test_writable_path_received_the_write(
    hostile_run: ProjectRun, secret_files: dict[str, str]
) -> None:
    assert (Path(secret_files["WRITABLE_DIR"]) / "ok.txt").read_text() == "ok"


def test_nothing_of_the_jail_remains(hostile_run: ProjectRun) -> None:
    mounts = Path("/proc/self/mountinfo").read_text()
    assert "pytest-isolate" not in mounts
    assert not [d for d in os.listdir("/tmp") if d.startswith("pytest-isolate-") and _owner_dead(d)]


def _owner_dead(name: str) -> bool:
    pid = name.split("-")[2]
    return pid.isdigit() and not os.path.exists(f"/proc/{pid}")
