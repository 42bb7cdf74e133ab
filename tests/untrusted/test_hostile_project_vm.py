"""The same hostile project with ``--isolate-untrusted=vm``: contained by a QEMU guest.

One boot for the module (about 10 s under TCG): the checks share its run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from untrusted_hostile import NETRC_TOKEN, SECRET, HostileRun, hostile_project


@pytest.fixture(scope="module")
def vm_run() -> Iterator[HostileRun]:
    with hostile_project() as project:
        yield project.run("--isolate-untrusted=vm", front_door=True)


def test_vm_no_project_code_runs_on_the_host(vm_run: HostileRun) -> None:
    assert vm_run.evidence == set(), vm_run.output[-3000:]


def test_vm_secrets_network_and_host_files_are_out_of_reach(vm_run: HostileRun) -> None:
    assert SECRET not in vm_run.output
    assert NETRC_TOKEN not in vm_run.output
    assert vm_run.heard == []
    assert not vm_run.project_written


def test_vm_report_is_honest_and_neutralised(vm_run: HostileRun) -> None:
    assert vm_run.ret == 1
    assert "5 failed, 3 passed" in vm_run.output
    assert "\x1b" not in vm_run.output
    assert "test_escape_in_name[\\x1b]0;pwned\\x07\\x1b[2J]" in vm_run.output
    assert "a QEMU VM (its own kernel)" in vm_run.output
