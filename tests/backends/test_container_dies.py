"""A container killed under a running test fails that test, in words, and the run goes on."""

from __future__ import annotations

import re

import pytest
from container_project import BOOKWORM, ContainerRun, run_project, wait_no_containers

TESTS = f"""
import time
from pytest_isolate import isolate

@isolate("container", image="{BOOKWORM}")
def test_before():
    pass

@isolate("container", image="{BOOKWORM}")
def test_container_dies():
    time.sleep(60)

@isolate("container", image="{BOOKWORM}")
def test_after_gets_a_new_container():
    pass
"""

# A broker-side plugin: while test_container_dies runs, kill this run's container
# with the engine (as an operator, the OOM killer or a dying engine would).
KILLER = """
import os, threading, time

def pytest_runtest_logstart(nodeid, location):
    if not nodeid.endswith("test_container_dies") or not os.environ.get("KILLER_ARMED"):
        return
    def kill():
        import docker
        time.sleep(1.5)
        client = docker.from_env()
        label = f"org.pytest-isolate.broker-pid={os.getpid()}"
        for container in client.containers.list(filters={"label": label}):
            container.kill()
    threading.Thread(target=kill, daemon=True).start()
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ContainerRun:
    return run_project(
        tmp_path_factory.mktemp("dies"),
        {"test_dies.py": TESTS, "killer.py": KILLER},
        "-p",
        "killer",
        "-rA",
        env={"KILLER_ARMED": "1"},
    )


def test_the_test_under_a_killed_container_fails_saying_so(run: ContainerRun) -> None:
    line = run.summary_line("test_container_dies")
    assert line.startswith("FAILED"), run.output[-3000:]
    assert "container" in run.output.split("test_container_dies", 1)[1][:4000]


def test_it_fails_at_once_not_after_its_sleep(run: ContainerRun) -> None:
    seconds = float(re.findall(r" in ([0-9.]+)s", run.output)[-1])
    assert seconds < 45, run.output[-2000:]


def test_the_next_test_gets_a_new_container(run: ContainerRun) -> None:
    assert run.outcome("test_before") == "PASSED"
    assert run.outcome("test_after_gets_a_new_container") == "PASSED"


def test_no_container_is_left(run: ContainerRun) -> None:
    assert wait_no_containers(run.broker_pid) == []
