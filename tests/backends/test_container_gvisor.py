"""gVisor's runsc as the container runtime: chosen per test or per run, checked, and explained.

Real containers under Debian's runsc, registered with the engine by
``scripts/start-dockerd`` (the hostile suite runs under it too:
``test_container_hostile.py``; the self-test: ``tests/selftest``).
"""

from __future__ import annotations

import platform

import pytest
from container_project import BOOKWORM, ContainerRun, run_project, wait_no_containers
from project_runner import doctor_output

PROJECT = """
import platform
from pytest_isolate import isolate

@isolate("container", image="{image}", runtime="runsc")
def test_marked_runsc():
    assert False, "kernel release " + platform.release()

@isolate("container", image="{image}", runtime="runc")
def test_marked_runc():
    assert False, "kernel release " + platform.release()

@isolate("container", image="{image}")
def test_unmarked_runtime():
    assert False, "kernel release " + platform.release()

@isolate("container", image="{image}", runtime="no-such-runtime")
def test_unknown_runtime():
    pass

@isolate("container", image="{image}", runtime="runsc", seccomp={{"policy": "default"}})
def test_a_policy_that_needs_a_listener():
    pass

@isolate("container", image="{image}", runtime="runsc", seccomp={{"policy": "permissive"}})
def test_a_policy_without_listener():
    pass
"""


@pytest.fixture(scope="module", params=["engine's", "runsc"])
def default_runtime(request: pytest.FixtureRequest) -> str:
    """The run's default: the engine's own, or ``--isolate-container-runtime=runsc``."""
    return str(request.param)


@pytest.fixture(scope="module")
def run(default_runtime: str, tmp_path_factory: pytest.TempPathFactory) -> ContainerRun:
    args = ("--isolate-container-runtime=runsc",) if default_runtime == "runsc" else ()
    return run_project(
        tmp_path_factory.mktemp("gvisor"), {"test_rt.py": PROJECT.format(image=BOOKWORM)}, *args
    )


def _kernel(run: ContainerRun, test: str) -> str:
    line = run.summary_line(test)
    return line.rsplit("kernel release ", 1)[-1].strip()


def test_a_marks_runtime_wins_and_the_default_applies_to_the_rest(
    run: ContainerRun, default_runtime: str
) -> None:
    host = platform.release()
    assert _kernel(run, "test_marked_runsc") == "4.4.0"  # gVisor's own kernel answers
    assert _kernel(run, "test_marked_runc") == host
    expected = "4.4.0" if default_runtime == "runsc" else host
    assert _kernel(run, "test_unmarked_runtime") == expected


def test_an_unknown_runtime_is_named_with_the_ones_there_are(run: ContainerRun) -> None:
    line = run.summary_line("test_unknown_runtime")
    assert line.startswith("ERROR"), line
    assert "the engine has no container runtime 'no-such-runtime'" in line
    assert "runsc" in line.split("it has:", 1)[1]  # the runtimes that do exist


def test_a_policy_that_needs_a_listener_says_runsc_has_none(run: ContainerRun) -> None:
    line = run.summary_line("test_a_policy_that_needs_a_listener")
    assert line.startswith("ERROR"), line
    assert "gVisor's runsc has none" in line and "policy='permissive'" in line


def test_a_policy_without_listener_runs_under_runsc(run: ContainerRun) -> None:
    assert run.outcome("test_a_policy_without_listener") == "PASSED", run.output[-3000:]


def test_no_container_outlives_the_run(run: ContainerRun) -> None:
    assert wait_no_containers(run.broker_pid, timeout=5) == []


def test_the_doctor_says_whether_gvisor_is_registered() -> None:
    doctor = doctor_output()
    assert "gVisor: registered as 'runsc'" in doctor, doctor
    # and it really starts a sandbox: gVisor's own kernel answers
    assert "gVisor (runsc): works: a container of" in doctor, doctor
    assert "its kernel says 4.4.0" in doctor
