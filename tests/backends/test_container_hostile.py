"""Hostile tests in a container: what they try, and that it fails while the run goes on.

Twice: under the engine's runc, and under gVisor's runsc (``runtime``), where
the test talks to gVisor's user-space kernel instead of the host's. One
difference is by design: under runsc the pids limit bounds the sandbox as a
whole (gVisor's own processes count too), so a fork bomb ends the sandbox
instead of meeting EAGAIN; its test fails, and the next test gets a new one.
"""

from __future__ import annotations

import platform
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_project import BOOKWORM, ContainerRun, run_project, wait_no_containers

HOSTILE = """
import os, socket, time
import pytest
from pytest_isolate import isolate

pytestmark = isolate("container", image="{image}", timeout=20, pids_limit=64, mem_limit="256M")

def test_root_secret_is_invisible():
    assert not os.path.exists("{secret}")
    assert not os.path.exists("/root/.cache")

def test_project_is_read_only():
    with pytest.raises(OSError):
        open(os.path.join(os.path.dirname(__file__), "planted.py"), "w")
    with pytest.raises(OSError):
        os.unlink(__file__)

def test_tcp_to_a_host_loopback_listener_fails():
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", {port}), timeout=2)

def test_only_the_loopback_interface_exists():
    assert os.listdir("/sys/class/net") == ["lo"]

def test_docker_socket_is_absent():
    assert not os.path.exists("/var/run/docker.sock")
    assert not os.path.exists("/run/docker.sock")

def test_broker_environment_secret_is_absent():
    assert "BROKER_SECRET_TOKEN" not in os.environ
    assert all("hunter2" not in value for value in os.environ.values())

def test_reports_its_kernel():
    import platform
    assert False, "kernel release " + platform.release()

def test_runs_unprivileged():
    assert os.getuid() == 65534 and os.geteuid() == 65534

def test_fork_bomb_is_bounded_by_the_pids_limit():
    children = 0
    try:
        while children < 10_000:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
            children += 1
    except OSError:
        pass
    print("FORKED", children)
    assert children < 64

def test_memory_hog_hits_the_memory_limit():
    hog = bytearray(1 << 30)
    assert hog

def test_runs_after_the_hostile_ones():
    pass
"""


@pytest.fixture(scope="module")
def loopback_listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP listener on the host's loopback; the connections it accepted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    listener.close()
    for conn in accepted:
        conn.close()


@pytest.fixture(scope="module")
def root_secret() -> Iterator[Path]:
    path = Path("/root", f"pytest-isolate-secret-{uuid.uuid4().hex}")
    path.write_text("the crown jewels")
    yield path
    path.unlink()


@pytest.fixture(scope="module", params=["runc", "runsc"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def hostile_run(
    tmp_path_factory: pytest.TempPathFactory,
    loopback_listener: tuple[int, list[socket.socket]],
    root_secret: Path,
    runtime: str,
) -> ContainerRun:
    port, _accepted = loopback_listener
    source = HOSTILE.format(image=BOOKWORM, secret=root_secret, port=port)
    return run_project(
        tmp_path_factory.mktemp("hostile"),
        {"test_hostile.py": source},
        f"--isolate-container-runtime={runtime}",
        env={"BROKER_SECRET_TOKEN": "hunter2"},
    )


@pytest.mark.parametrize(
    "test",
    [
        "test_root_secret_is_invisible",
        "test_project_is_read_only",
        "test_tcp_to_a_host_loopback_listener_fails",
        "test_only_the_loopback_interface_exists",
        "test_docker_socket_is_absent",
        "test_broker_environment_secret_is_absent",
        "test_runs_unprivileged",
        "test_fork_bomb_is_bounded_by_the_pids_limit",
        "test_runs_after_the_hostile_ones",
    ],
)
def test_the_attempt_fails_inside_the_container(
    hostile_run: ContainerRun, test: str, runtime: str
) -> None:
    if runtime == "runsc" and test == "test_fork_bomb_is_bounded_by_the_pids_limit":
        line = hostile_run.summary_line(test)  # the sandbox ended: see the module's docstring
        assert line.startswith("FAILED") and "the target went away" in line, line
        return
    assert hostile_run.outcome(test) == "PASSED", hostile_run.output[-3000:]


def test_under_runsc_the_tests_ran_in_gvisors_kernel(
    hostile_run: ContainerRun, runtime: str
) -> None:
    """runc shares the host's kernel; gVisor answers with its own (it says Linux 4.4.0)."""
    line = hostile_run.summary_line("test_reports_its_kernel")
    host = f"kernel release {platform.release()}"
    if runtime == "runsc":
        assert "kernel release 4.4.0" in line and host not in line, line
    else:
        assert host in line, line


def test_no_connection_reached_the_host_listener(
    hostile_run: ContainerRun, loopback_listener: tuple[int, list[socket.socket]]
) -> None:
    assert loopback_listener[1] == []


def test_a_memory_hog_fails_with_memory_error(hostile_run: ContainerRun) -> None:
    line = hostile_run.summary_line("test_memory_hog_hits_the_memory_limit")
    assert line.startswith("FAILED") and "MemoryError" in line


def test_the_project_was_not_changed(hostile_run: ContainerRun, tmp_path_factory) -> None:
    project = Path(hostile_run.output and tmp_path_factory.getbasetemp())
    assert not list(project.rglob("planted.py"))


def test_no_container_outlives_the_run(hostile_run: ContainerRun) -> None:
    assert hostile_run.broker_pid > 0
    assert wait_no_containers(hostile_run.broker_pid, timeout=5) == []
