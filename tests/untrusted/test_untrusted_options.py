"""Pytest's own options work on items built from the agent's data; marks tighten, CLI passes env.

A benign project under /var/tmp, run with real brokers (``python -P -m
pytest_isolate.untrusted``) and a real container. The checks every target
must pass are in ``untrusted_option_checks``, collected here too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
import untrusted_option_checks as checks
from project_runner import run_pytest
from untrusted_benign import BenignProject, benign_project

# The checks every target must pass, collected here against a container.
test_m_selects_by_mark = checks.test_m_selects_by_mark
test_a_mark_can_tighten_the_timeout = checks.test_a_mark_can_tighten_the_timeout
test_only_env_named_on_the_command_line_reaches_the_tests = (
    checks.test_only_env_named_on_the_command_line_reaches_the_tests
)


IMAGE = "pytest-isolate/debian:bookworm"

#: After the common tests: 8 tests in all (test_param counts twice).
OWN_TESTS = """
def test_fail():
    assert 1 == 2

@isolate("container", network=True)
def test_wants_network():
    print("interfaces:", sorted(os.listdir("/sys/class/net")))

class TestGroup:
    @pytest.mark.parametrize("n", [1, 2])
    def test_param(self, n):
        pass
"""


@pytest.fixture(scope="module")
def project() -> Iterator[BenignProject]:
    with benign_project(f"container:{IMAGE}", OWN_TESTS, tests=8) as made:
        yield made


def test_k_selects_by_name_and_class(project: BenignProject) -> None:
    result = project.run("-q", "-k", "TestGroup and 2")
    assert "1 passed, 7 deselected" in result.output


def test_collect_only_lists_the_agents_node_ids(project: BenignProject) -> None:
    result = project.run("--co", "-q")
    assert result.ret == 0
    assert "test_things.py::TestGroup::test_param[2]" in result.output.splitlines()
    assert "8 tests collected" in result.output


def test_junit_xml_has_one_case_per_test_with_outcomes(project: BenignProject) -> None:
    xml = project.path / "junit.xml"
    project.run("-q", f"--junitxml={xml}", "-k", "pass or fail")
    cases = ElementTree.parse(xml).getroot().iter("testcase")
    outcome = {c.get("name"): [child.tag for child in c] for c in cases}
    # Beside its outcome, each case carries its receipt (isolate_layers) as a property.
    assert outcome == {"test_pass": ["properties"], "test_fail": ["properties", "failure"]}
    names = {p.get("name") for p in ElementTree.parse(xml).getroot().iter("property")}
    assert names == {"isolate_layers"}


def test_last_failed_reruns_only_the_failures(project: BenignProject) -> None:
    project.run("-q", "-k", "pass or fail", cache=True)
    result = project.run("-q", "--lf", cache=True)
    shutil.rmtree(project.path / ".pytest_cache", ignore_errors=True)
    assert "1 failed" in result.output
    assert "FAILED test_things.py::test_fail" in result.output


@pytest.mark.parametrize("target", ["jail"])
def test_an_unknown_target_is_refused_naming_the_valid_ones(
    project: BenignProject, target: str
) -> None:
    command = [sys.executable, "-P", "-m", "pytest_isolate.untrusted"]
    result = subprocess.run(
        [*command, f"--isolate-untrusted={target}", "-p", "no:cacheprovider"],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4
    assert "unknown target; use container:IMAGE, vm or chroot" in result.stderr


def test_no_container_is_left_behind(project: BenignProject) -> None:
    project.run("-q", "-k", "test_pass")
    names = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=org.pytest-isolate.broker-pid"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    mine = [n for n in names if n]
    assert mine == [] or all(_alive_broker(n) for n in mine)


def _alive_broker(container: str) -> bool:
    """Containers of other, still running brokers (other engineers' tests) are not ours."""
    pid = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            '{{index .Config.Labels "org.pytest-isolate.broker-pid"}}',
            container,
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


FORGING_CONFTEST = """
import pytest_isolate.wire.item_data as item_data

real = item_data.describe_item

def forged(item):
    data = real(item)
    if item.name == "test_pass":
        data["location"] = ["../../etc/passwd", 1, "x"]
    if item.name == "test_fail":
        data["marks"] = [{"name": "os.system", "args": ["id"], "kwargs": {}}]
    return data

item_data.describe_item = forged
"""


def test_forged_item_data_becomes_a_collection_error_not_an_item(project: BenignProject) -> None:
    forging = project.path / "forging"
    forging.mkdir()
    try:
        (forging / "conftest.py").write_text(FORGING_CONFTEST)
        (forging / "test_forged.py").write_text("def test_pass(): pass\ndef test_fail(): pass\n")
        (forging / "test_other.py").write_text("def test_ok(): pass\n")
        result = project.run("-q", "forging", "--continue-on-collection-errors")
    finally:
        shutil.rmtree(forging)
    assert "location path '../../etc/passwd' leaves the rootdir" in result.output
    assert "mark name 'os.system' is not an identifier" in result.output
    assert "1 passed, 2 errors" in result.output
    assert result.ret == 1


def test_ignore_applies_in_the_target_where_collection_happens(project: BenignProject) -> None:
    result = project.run("-q", "--ignore=test_things.py")
    assert result.ret == 5  # no tests collected
    assert "no tests ran" in result.output


def test_plain_pytest_entry_imports_no_conftest_when_the_ini_sets_nothing_unsafe(
    project: BenignProject,
) -> None:
    (project.path / "conftest.py").write_text(
        f"try:\n    open({str(project.path / 'conftest-ran-here')!r}, 'w').close()\n"
        "except OSError:\n    pass  # read-only in the target\n"
    )
    try:
        result = run_pytest(project.path, project.untrusted, "-q", "-k", "pass")
    finally:
        (project.path / "conftest.py").unlink()
    assert "1 passed" in result.output
    assert not (project.path / "conftest-ran-here").exists()


def test_network_stays_off_unless_the_command_line_allows_it(project: BenignProject) -> None:
    denied = project.run("-rA", "-k", "wants_network")
    allowed = project.run("-rA", "-k", "wants_network", "--isolate-untrusted-allow=network")
    assert "test_wants_network: network=True" in denied.output  # named as not granted
    assert "target started 1 time(s)" in denied.output
    # Granted: the test runs in a second container, created with a network. (This
    # machine's engine runs with --bridge=none, so that network has only loopback.)
    assert "marks may loosen: network" in allowed.output
    assert "mark options not granted" not in allowed.output
    assert "target started 2 time(s)" in allowed.output
