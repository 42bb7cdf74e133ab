"""A benign project for the untrusted option tests, run through the front door.

Each untrusted target (a container, a chroot jail) gets the same common tests,
so the option checks that hold for every target (``untrusted_option_checks``)
read the same project, plus tests of its own. The project lives under
/var/tmp, readable by the target's unprivileged user.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from project_runner import FRONT_DOOR, ProjectRun, run_pytest, write_project

#: Every target's project starts with these; ``{backend}`` is the target's own.
COMMON_TESTS = """
import os, socket, sys, time
import pytest
from pytest_isolate import isolate

def test_pass():
    pass

@pytest.mark.slow
def test_slow():
    pass

@isolate("{backend}", timeout=1)
def test_tight_timeout():
    time.sleep(30)

def test_env():
    print("DB_URL=" + os.environ.get("DB_URL", "<unset>"))
    print("BROKER_ONLY=" + os.environ.get("BROKER_ONLY", "<unset>"))
"""

#: The broker's environment: only what the command line names may reach a test.
BROKER_ENV = {"DB_URL": "postgres://ci", "BROKER_ONLY": "hidden"}


@dataclass(frozen=True)
class BenignProject:
    path: Path
    target: str  # the value of --isolate-untrusted, e.g. "chroot" or "container:IMAGE"
    tests: int  # how many tests the project holds, parametrized ones counted each

    @property
    def untrusted(self) -> str:
        return f"--isolate-untrusted={self.target}"

    def run(self, *args: str, cache: bool = False) -> ProjectRun:
        """A real broker over the project: ``python -P -m pytest_isolate.untrusted``."""
        return run_pytest(
            self.path,
            self.untrusted,
            "--color=no",
            *args,
            command=FRONT_DOOR,
            env=BROKER_ENV,
            cache=cache,
        )


@contextlib.contextmanager
def benign_project(target: str, own_tests: str, tests: int) -> Iterator[BenignProject]:
    """The common tests and ``own_tests`` in one module; removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="ut-options-", dir="/var/tmp"))
    parent.chmod(0o755)
    # A fixed, digit-free rootdir name: -k also matches the rootdir's name.
    path = parent / "project"
    path.mkdir(mode=0o755)
    backend = target.split(":", 1)[0]
    write_project(
        path,
        {
            "pytest.ini": "[pytest]\nmarkers = slow: slow tests\n",
            "test_things.py": COMMON_TESTS.format(backend=backend) + own_tests,
        },
    )
    try:
        yield BenignProject(path, target, tests)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
