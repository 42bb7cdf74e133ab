"""Containers live as long as they should: shared, fresh, remote copies, and the broker's death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_project import (
    BOOKWORM,
    CONFTEST,
    ContainerRun,
    containers_of,
    hosts,
    remove_containers_of,
    run_project,
    wait_no_containers,
)

from pytest_isolate.container.tcp_relay import LoopbackTcpRelay

SHARING = f"""
import os, socket
from pytest_isolate import isolate

@isolate("container", image="{BOOKWORM}")
def test_shared_one():
    print("HOST", socket.gethostname())

@isolate("container", image="{BOOKWORM}")
def test_shared_two():
    print("HOST", socket.gethostname())

@isolate("container", image="{BOOKWORM}", fresh=True)
def test_fresh_one():
    print("HOST", socket.gethostname())

@isolate("container", image="{BOOKWORM}", fresh=True)
def test_fresh_two():
    print("HOST", socket.gethostname())

@isolate("container", image="{BOOKWORM}", user="root")
def test_root_agent_drops_the_test_to_nobody():
    assert os.getuid() == 65534 and os.geteuid() == 65534
"""

COPIED = f"""
import os
import pytest
from pytest_isolate import isolate

@isolate("container", image="{BOOKWORM}")
def test_project_is_copied_not_mounted():
    here = os.path.dirname(os.path.abspath(__file__))
    with open("/proc/self/mountinfo") as fh:
        mount_points = [line.split()[4] for line in fh]
    assert here not in mount_points
    assert "/opt/pytest-isolate/site" not in mount_points
    assert open(os.path.join(here, "data.txt")).read() == "copied"
    with pytest.raises(OSError):
        open(os.path.join(here, "planted.py"), "w")
"""


@pytest.fixture(scope="module")
def sharing_run(tmp_path_factory: pytest.TempPathFactory) -> ContainerRun:
    return run_project(tmp_path_factory.mktemp("sharing"), {"test_sharing.py": SHARING})


def test_tests_of_one_configuration_share_a_container(sharing_run: ContainerRun) -> None:
    seen = hosts(sharing_run)
    assert seen["test_shared_one"] == seen["test_shared_two"]


def test_fresh_gives_each_test_its_own_container(sharing_run: ContainerRun) -> None:
    seen = hosts(sharing_run)
    assert len({seen["test_fresh_one"], seen["test_fresh_two"], seen["test_shared_one"]}) == 3


def test_a_root_agent_runs_tests_as_nobody(sharing_run: ContainerRun) -> None:
    assert sharing_run.outcome("test_root_agent_drops_the_test_to_nobody") == "PASSED"
    assert wait_no_containers(sharing_run.broker_pid, timeout=5) == []


@pytest.fixture
def relay() -> Iterator[LoopbackTcpRelay]:
    with LoopbackTcpRelay() as opened:
        yield opened


def test_a_remote_engine_gets_a_copy_of_the_project(
    tmp_path: Path, relay: LoopbackTcpRelay
) -> None:
    project = tmp_path / "remote"
    project.mkdir()
    (project / "data.txt").write_text("copied")
    run = run_project(project, {"test_copied.py": COPIED}, env={"DOCKER_HOST": relay.url})
    assert run.outcome("test_project_is_copied_not_mounted") == "PASSED", run.output
    assert wait_no_containers(run.broker_pid, timeout=5) == []


def test_a_killed_broker_leaves_no_container(tmp_path: Path) -> None:
    project = tmp_path / "killed"
    project.mkdir()
    project.chmod(0o755)
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_sleeps.py").write_text(
        f"import time\nfrom pytest_isolate import isolate\n\n"
        f"@isolate('container', image='{BOOKWORM}')\ndef test_sleeps():\n    time.sleep(120)\n"
    )
    broker = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not containers_of(broker.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert containers_of(broker.pid), "the broker never started its container"
        time.sleep(1.0)  # the test is now sleeping inside
        os.kill(broker.pid, signal.SIGKILL)
        broker.wait()
        assert wait_no_containers(broker.pid, timeout=15) == []
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait()
        remove_containers_of(broker.pid)
