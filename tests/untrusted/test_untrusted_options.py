"""Pytest's own options work on items built from the agent's data; marks tighten, CLI passes env.

A benign project under /var/tmp, run with real brokers (``python -P -m
pytest_isolate.untrusted``) and a real container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

IMAGE = "pytest-isolate/debian:bookworm"
UNTRUSTED = f"--isolate-untrusted=container:{IMAGE}"

TESTS = """
import os, time
import pytest
from pytest_isolate import isolate

def test_pass():
    pass

def test_fail():
    assert 1 == 2

@pytest.mark.slow
def test_slow():
    pass

@isolate("container", timeout=1)
def test_tight_timeout():
    time.sleep(30)

def test_env():
    print("DB_URL=" + os.environ.get("DB_URL", "<unset>"))
    print("BROKER_ONLY=" + os.environ.get("BROKER_ONLY", "<unset>"))

@isolate("container", network=True)
def test_wants_network():
    print("interfaces:", sorted(os.listdir("/sys/class/net")))

class TestGroup:
    @pytest.mark.parametrize("n", [1, 2])
    def test_param(self, n):
        pass
"""


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="ut-options-", dir="/var/tmp"))
    parent.chmod(0o755)
    # A fixed, digit-free rootdir name: -k also matches the rootdir's name.
    base = parent / "project"
    base.mkdir(mode=0o755)
    (base / "pytest.ini").write_text("[pytest]\nmarkers = slow: slow tests\n")
    (base / "test_things.py").write_text(textwrap.dedent(TESTS))
    try:
        yield base
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def broker(project: Path, *args: str, cache: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DB_URL": "postgres://ci", "BROKER_ONLY": "hidden"}
    command = [sys.executable, "-P", "-m", "pytest_isolate.untrusted", UNTRUSTED, "--color=no"]
    if not cache:
        command += ["-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_k_selects_by_name_and_class(project: Path) -> None:
    result = broker(project, "-q", "-k", "TestGroup and 2")
    assert "1 passed, 7 deselected" in result.stdout


def test_m_selects_by_mark(project: Path) -> None:
    result = broker(project, "-q", "-m", "slow")
    assert "1 passed, 7 deselected" in result.stdout


def test_collect_only_lists_the_agents_node_ids(project: Path) -> None:
    result = broker(project, "--co", "-q")
    assert result.returncode == 0
    assert "test_things.py::TestGroup::test_param[2]" in result.stdout.splitlines()
    assert "8 tests collected" in result.stdout


def test_junit_xml_has_one_case_per_test_with_outcomes(project: Path) -> None:
    xml = project / "junit.xml"
    broker(project, "-q", f"--junitxml={xml}", "-k", "pass or fail")
    cases = ElementTree.parse(xml).getroot().iter("testcase")
    outcome = {c.get("name"): [child.tag for child in c] for c in cases}
    assert outcome == {"test_pass": [], "test_fail": ["failure"]}


def test_last_failed_reruns_only_the_failures(project: Path) -> None:
    broker(project, "-q", "-k", "pass or fail", cache=True)
    result = broker(project, "-q", "--lf", cache=True)
    shutil.rmtree(project / ".pytest_cache", ignore_errors=True)
    assert "1 failed" in result.stdout
    assert "FAILED test_things.py::test_fail" in result.stdout


def test_a_mark_can_tighten_the_timeout(project: Path) -> None:
    result = broker(project, "-q", "-k", "tight", "--isolate-timeout=60")
    assert "timed out after 1 s" in result.stdout


def test_only_env_named_on_the_command_line_reaches_the_tests(project: Path) -> None:
    result = broker(project, "-rA", "-k", "test_env", "--isolate-untrusted-env=DB_URL")
    assert "DB_URL=postgres://ci" in result.stdout
    assert "BROKER_ONLY=<unset>" in result.stdout


@pytest.mark.parametrize("target", ["jail"])
def test_an_unknown_target_is_refused_naming_the_valid_ones(project: Path, target: str) -> None:
    command = [sys.executable, "-P", "-m", "pytest_isolate.untrusted"]
    result = subprocess.run(
        [*command, f"--isolate-untrusted={target}", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4
    assert "unknown target; use container:IMAGE, vm or chroot" in result.stderr


def test_no_container_is_left_behind(project: Path) -> None:
    broker(project, "-q", "-k", "test_pass")
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
import pytest_isolate.untrusted.item_data as item_data

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


def test_forged_item_data_becomes_a_collection_error_not_an_item(project: Path) -> None:
    forging = project / "forging"
    forging.mkdir()
    try:
        (forging / "conftest.py").write_text(FORGING_CONFTEST)
        (forging / "test_forged.py").write_text("def test_pass(): pass\ndef test_fail(): pass\n")
        (forging / "test_other.py").write_text("def test_ok(): pass\n")
        result = broker(project, "-q", "forging", "--continue-on-collection-errors")
    finally:
        shutil.rmtree(forging)
    assert "location path '../../etc/passwd' leaves the rootdir" in result.stdout
    assert "mark name 'os.system' is not an identifier" in result.stdout
    assert "1 passed, 2 errors" in result.stdout
    assert result.returncode == 1


def test_ignore_applies_in_the_target_where_collection_happens(project: Path) -> None:
    result = broker(project, "-q", "--ignore=test_things.py")
    assert result.returncode == 5  # no tests collected
    assert "no tests ran" in result.stdout


def test_plain_pytest_entry_imports_no_conftest_when_the_ini_sets_nothing_unsafe(
    project: Path,
) -> None:
    (project / "conftest.py").write_text(
        f"try:\n    open({str(project / 'conftest-ran-here')!r}, 'w').close()\n"
        "except OSError:\n    pass  # read-only in the target\n"
    )
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                UNTRUSTED,
                "-q",
                "-p",
                "no:cacheprovider",
                "-k",
                "pass",
            ],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        (project / "conftest.py").unlink()
    assert "1 passed" in result.stdout
    assert not (project / "conftest-ran-here").exists()


def test_network_stays_off_unless_the_command_line_allows_it(project: Path) -> None:
    denied = broker(project, "-rA", "-k", "wants_network")
    allowed = broker(project, "-rA", "-k", "wants_network", "--isolate-untrusted-allow=network")
    assert "test_wants_network: network=True" in denied.stdout  # named as not granted
    assert "target started 1 time(s)" in denied.stdout
    # Granted: the test runs in a second container, created with a network. (This
    # machine's engine runs with --bridge=none, so that network has only loopback.)
    assert "marks may loosen: network" in allowed.stdout
    assert "mark options not granted" not in allowed.stdout
    assert "target started 2 time(s)" in allowed.stdout
