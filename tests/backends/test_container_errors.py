"""Each way a container cannot run a test fails that test with words that say how to fix it."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterator

import docker
import pytest
from container_project import BOOKWORM, ContainerRun, run_project, wait_no_containers

NO_PYTHON_IMAGE = "pytest-isolate-test/no-python:latest"

ERRORS = f"""
from pytest_isolate import isolate

@isolate("container", image="pytest-isolate/debian:no-such-release")
def test_missing_image():
    pass

@isolate("container", image="{NO_PYTHON_IMAGE}")
def test_image_without_python():
    pass

@isolate("container", image="{BOOKWORM}")
def test_runs_after_the_errors():
    pass
"""

NEEDS_DOCKER_SDK = f"""
import docker  # on the host, not in the image
from pytest_isolate import isolate

@isolate("container", image="{BOOKWORM}")
def test_needs_a_module_the_image_lacks():
    pass
"""


@pytest.fixture(scope="module")
def no_python_image() -> Iterator[str]:
    """An image with a shell (busybox) and no Python at all."""
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is installed by scripts/setup-machine"
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        archive.add(busybox, arcname="bin/sh")
    client = docker.from_env()
    client.api.import_image_from_data(data.getvalue(), repository=NO_PYTHON_IMAGE)
    yield NO_PYTHON_IMAGE
    client.api.remove_image(NO_PYTHON_IMAGE, force=True)
    client.close()


@pytest.fixture(scope="module")
def error_run(tmp_path_factory: pytest.TempPathFactory, no_python_image: str) -> ContainerRun:
    files = {"test_errors.py": ERRORS, "test_needs_sdk.py": NEEDS_DOCKER_SDK}
    return run_project(tmp_path_factory.mktemp("errors"), files)


def test_a_missing_image_the_builder_cannot_make_names_the_ones_it_can(
    error_run: ContainerRun,
) -> None:
    """No ``image build debian:no-such-release``: that command would fail in turn."""
    line = error_run.summary_line("test_missing_image")
    assert line.startswith(("FAILED", "ERROR"))
    assert "image build debian:no-such-release" not in line
    assert "makes pytest-isolate/debian:bookworm, pytest-isolate/debian:trixie only" in line


def test_the_summary_says_the_tests_could_not_run_not_that_they_broke_the_protocol(
    error_run: ContainerRun,
) -> None:
    summary = error_run.backend_summary("container:pytest-isolate/debian:no-such-release")
    assert "could not run (engine, image, kernel or options" in summary
    assert "broke the protocol" not in summary


def test_an_image_without_python_says_so(error_run: ContainerRun) -> None:
    line = error_run.summary_line("test_image_without_python")
    assert line.startswith(("FAILED", "ERROR"))
    assert "has no usable python3 on PATH" in line


def test_an_import_failing_inside_names_the_missing_module(error_run: ContainerRun) -> None:
    line = error_run.summary_line("test_needs_a_module_the_image_lacks")
    assert line.startswith(("FAILED", "ERROR"))
    assert "lacks the Python module 'docker'" in line


def test_the_run_goes_on_after_the_errors(error_run: ContainerRun) -> None:
    assert error_run.outcome("test_runs_after_the_errors") == "PASSED"
    assert wait_no_containers(error_run.broker_pid, timeout=5) == []


def test_an_unreachable_engine_names_the_fix(tmp_path_factory: pytest.TempPathFactory) -> None:
    source = f"""
from pytest_isolate import isolate

@isolate("container", image="{BOOKWORM}")
def test_anything():
    pass
"""
    run = run_project(
        tmp_path_factory.mktemp("no-engine"),
        {"test_no_engine.py": source},
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    line = run.summary_line("test_anything")
    assert line.startswith(("FAILED", "ERROR"))
    assert "the address comes from DOCKER_HOST" in line and "unset DOCKER_HOST" in line
    assert "scripts/" not in line  # an installed package has no scripts directory
