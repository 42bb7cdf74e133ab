"""A hostile project run normally (its attacks work) and in untrusted mode (each is contained).

Real parts: plain pytest subprocesses on the host, a real Docker container
for the untrusted target, a real loopback listener, real files. The normal
run uses plain pytest (``-p no:isolate``), as the project's own CI would.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from untrusted_hostile import (
    IMAGE,
    NETRC_TOKEN,
    PYTHONPATH_BEFORE_PLUGINS,
    SECRET,
    HostileProject,
    hostile_project,
)

UNTRUSTED = f"--isolate-untrusted=container:{IMAGE}"


class Runs:
    """Each run of the project, made once for the module (runs cost seconds)."""

    def __init__(self, project: HostileProject) -> None:
        self.normal = project.run("-k", "not kill")
        self.normal_stolen = (project.outside / "conftest-imported").read_text()
        self.normal_kill = project.run("-k", "kill")
        self.untrusted = project.run(UNTRUSTED, front_door=True)


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    with hostile_project() as project:
        yield Runs(project)


# -- run normally, every attack works (so the mode is what protects) ----------
def test_normally_conftest_test_module_ini_plugin_and_hook_run_on_the_host(runs: Runs) -> None:
    assert {
        "conftest-imported",
        "module-imported",
        "plugin-imported",
        "modifyitems-ran",
    } <= runs.normal.evidence


def test_normally_the_secrets_are_stolen(runs: Runs) -> None:
    assert SECRET in runs.normal_stolen
    assert NETRC_TOKEN in runs.normal_stolen
    assert f"stolen: {SECRET}" in runs.normal.output  # a test printed it too


def test_normally_tests_write_the_host_and_the_project(runs: Runs) -> None:
    assert "test-wrote-host" in runs.normal.evidence
    assert runs.normal.project_written


def test_normally_a_test_reaches_the_hosts_loopback(runs: Runs) -> None:
    assert runs.normal.heard == [b"pwned"]


def test_normally_escape_sequences_reach_the_terminal(runs: Runs) -> None:
    assert "\x1b]0;pwned\x07" in runs.normal.output
    assert "\x1b[2J" in runs.normal.output


def test_normally_hooks_forge_a_green_run(runs: Runs) -> None:
    assert runs.normal.ret == 0
    assert "PASSED test_attacks.py::test_fails_honestly" in runs.normal.output


def test_normally_a_test_kills_the_broker(runs: Runs) -> None:
    assert runs.normal_kill.ret == -9


# -- untrusted mode: each attack contained, the report honest ------------------
def test_untrusted_no_project_code_runs_on_the_host(runs: Runs) -> None:
    assert runs.untrusted.evidence == set()


def test_untrusted_secrets_never_reach_the_target(runs: Runs) -> None:
    assert runs.untrusted.outcome("test_read_secret") == "PASSED"  # it ran, and found nothing
    assert SECRET not in runs.untrusted.output
    assert NETRC_TOKEN not in runs.untrusted.output


def test_untrusted_tests_cannot_write_the_host_or_the_project(runs: Runs) -> None:
    assert runs.untrusted.outcome("test_write_host") == "FAILED"
    assert runs.untrusted.outcome("test_write_project") == "FAILED"
    assert "Read-only file system" in runs.untrusted.output
    assert not runs.untrusted.project_written


def test_untrusted_network_stays_off_though_a_mark_asks_for_it(runs: Runs) -> None:
    assert runs.untrusted.outcome("test_network") == "FAILED"
    assert runs.untrusted.heard == []
    assert "test_attacks.py::test_network: network=True" in runs.untrusted.output


def test_untrusted_escape_sequences_are_shown_neutralised(runs: Runs) -> None:
    assert "\x1b" not in runs.untrusted.output
    assert "\x07" not in runs.untrusted.output
    out = runs.untrusted.output
    assert "message \\x1b]0;pwned\\x07\\x1b[2J" in out  # assertion message
    assert "title \\x1b]0;pwned\\x07 clear \\x1b[2J" in out  # captured output
    assert "test_escape_in_name[\\x1b]0;pwned\\x07\\x1b[2J]" in out  # a test's name


def test_untrusted_the_report_is_honest(runs: Runs) -> None:
    assert runs.untrusted.ret == 1
    assert runs.untrusted.outcome("test_fails_honestly") == "FAILED"
    assert "5 failed, 3 passed" in runs.untrusted.output


def test_untrusted_the_broker_survives_a_kill_attempt(runs: Runs) -> None:
    assert runs.untrusted.outcome("test_kill_broker") == "PASSED"
    assert "8 tests run there, target started 1 time(s)" in runs.untrusted.output


def test_untrusted_names_the_project_settings_it_ignored(runs: Runs) -> None:
    out = runs.untrusted.output
    assert "project settings ignored in untrusted mode" in out
    if PYTHONPATH_BEFORE_PLUGINS:
        assert "addopts = '-p evilplug': ignored because" in out
    assert "pythonpath = '.': ignored because" in out


def test_plain_pytest_entry_refuses_a_project_whose_ini_already_acted() -> None:
    with hostile_project() as project:
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", UNTRUSTED]
        result = subprocess.run(
            command, cwd=project.project, capture_output=True, timeout=120, check=False
        )
        evidence = project.evidence()
    assert result.returncode == 4
    assert b"untrusted mode refused" in result.stderr
    assert b"python -P -m pytest_isolate.untrusted" in result.stderr
    assert "conftest-imported" not in evidence  # refused before any conftest
