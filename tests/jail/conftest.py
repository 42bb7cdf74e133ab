"""Fixtures for the jail tests: a host directory tree nobody can reach, and leak checks.

Every test here forks real children into real namespaces; after each one we
check that no mount appeared in our namespace and no child is left.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from jail_harness import mount_lines

from pytest_isolate.jail import JailConfig, jail_available


@dataclass(frozen=True)
class HostTree:
    """A scratch tree on the host: a project, a file beside it, a writable exchange dir."""

    root: str
    project: str
    beside: str
    exchange: str

    def config(self, **overrides: object) -> JailConfig:
        values: dict[str, object] = {
            "project_dir": self.project,
            "tmp_dirs": (os.path.join(self.root, "basetemp"),),
            "writable": (self.exchange,),
        }
        values.update(overrides)
        return JailConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _jail_works_here() -> None:
    ok, why = jail_available()
    assert ok, why


@pytest.fixture(autouse=True)
def no_mount_or_child_left() -> Iterator[None]:
    before = mount_lines()
    yield
    assert mount_lines() == before
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


@pytest.fixture
def host_tree() -> Iterator[HostTree]:
    # Under /tmp with open permissions, so a rootless (nobody) jail can bind it.
    root = tempfile.mkdtemp(prefix="isolate-jail-")
    os.chmod(root, 0o755)
    project = os.path.join(root, "project")
    os.mkdir(project)
    with open(os.path.join(project, "module.py"), "w") as handle:
        handle.write("VALUE = 1\n")
    # World-writable on the host: only the read-only bind may stop a write.
    os.chmod(project, 0o777)
    os.chmod(os.path.join(project, "module.py"), 0o666)
    beside = os.path.join(root, "beside.txt")
    with open(beside, "w") as handle:
        handle.write("host data beside the project\n")
    exchange = os.path.join(root, "exchange")
    os.mkdir(exchange, 0o777)
    os.chmod(exchange, 0o777)
    try:
        yield HostTree(root, project, beside, exchange)
    finally:
        shutil.rmtree(root)


@pytest.fixture(params=[False, True], ids=["root", "rootless"])
def rootless(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)
