"""The same hostile project with ``--isolate-untrusted=vm``: contained by a QEMU guest.

One boot for the module (about 10 s under TCG): the checks share its run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from untrusted_hostile import NETRC_TOKEN, SECRET, hostile_project


@dataclass
class VmRun:
    result: subprocess.CompletedProcess[bytes]
    evidence: set[str]
    heard: list[bytes]
    project_written: bool

    @property
    def out(self) -> str:
        return self.result.stdout.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def vm_run() -> Iterator[VmRun]:
    with hostile_project() as project:
        result = project.run("--isolate-untrusted=vm", front_door=True)
        yield VmRun(
            result,
            project.evidence(),
            list(project.listener.received),
            (project.project / "pwned-by-test").exists(),
        )


def test_vm_no_project_code_runs_on_the_host(vm_run: VmRun) -> None:
    assert vm_run.evidence == set(), vm_run.out[-3000:]


def test_vm_secrets_network_and_host_files_are_out_of_reach(vm_run: VmRun) -> None:
    assert SECRET.encode() not in vm_run.result.stdout
    assert NETRC_TOKEN.encode() not in vm_run.result.stdout
    assert vm_run.heard == []
    assert not vm_run.project_written


def test_vm_report_is_honest_and_neutralised(vm_run: VmRun) -> None:
    assert vm_run.result.returncode == 1
    assert "5 failed, 3 passed" in vm_run.out
    assert b"\x1b" not in vm_run.result.stdout
    assert "test_escape_in_name[\\x1b]0;pwned\\x07\\x1b[2J]" in vm_run.out
    assert "a QEMU VM (its own kernel)" in vm_run.out
