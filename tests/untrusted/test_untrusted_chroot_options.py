"""``--isolate-untrusted=chroot``: pytest's options, tightening marks, env, network, packages.

A benign project under /var/tmp, run with real brokers (``python -P -m
pytest_isolate.untrusted``) in a real namespace jail, and a real loopback
listener on the host for the network checks. The checks every target must
pass are in ``untrusted_option_checks``, collected here too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import untrusted_option_checks as checks
from loopback_listener import LoopbackListener, loopback_listener
from untrusted_benign import BenignProject, benign_project

# The checks every target must pass, collected here against a chroot jail.
test_m_selects_by_mark = checks.test_m_selects_by_mark
test_a_mark_can_tighten_the_timeout = checks.test_a_mark_can_tighten_the_timeout
test_only_env_named_on_the_command_line_reaches_the_tests = (
    checks.test_only_env_named_on_the_command_line_reaches_the_tests
)


#: After the common tests: 7 tests in all.
OWN_TESTS = """
PORT = {port}

@isolate("chroot", network=True)
def test_wants_network():
    with socket.create_connection(("127.0.0.1", PORT), timeout=3) as conn:
        conn.sendall(b"granted")

def test_host_packages_and_injected_site():
    import hypothesis  # installed in the host's environment, as a CI job installs deps
    import pytest_isolate
    print("pytest_isolate from", os.path.dirname(pytest_isolate.__file__))
    print("checkout visible:", os.path.exists({checkout!r} + "/pytest_isolate"))
    print("uid", os.getuid(), "python", sys.executable)

def test_tmp_path_is_writable(tmp_path):
    (tmp_path / "scratch").write_text("ok")
"""


@pytest.fixture(scope="module")
def listener() -> Iterator[LoopbackListener]:
    with loopback_listener() as served:
        yield served


@pytest.fixture(scope="module")
def project(listener: LoopbackListener) -> Iterator[BenignProject]:
    checkout = str(Path(__file__).resolve().parents[2])
    own_tests = OWN_TESTS.format(port=listener.port, checkout=checkout)
    with benign_project("chroot", own_tests, tests=7) as made:
        yield made


def test_collect_only_lists_the_jailed_agents_node_ids(project: BenignProject) -> None:
    result = project.run("--co", "-q")
    assert result.ret == 0, result.output[-3000:]
    assert "test_things.py::test_tmp_path_is_writable" in result.output.splitlines()
    assert "7 tests collected" in result.output


def test_the_hosts_packages_run_with_the_injected_pytest_isolate_as_nobody(
    project: BenignProject,
) -> None:
    result = project.run("-rA", "-k", "host_packages")
    assert "1 passed" in result.output, result.output[-3000:]
    assert "pytest_isolate from /opt/pytest-isolate/site/pytest_isolate" in result.output
    assert "checkout visible: False" in result.output
    assert f"uid 65534 python {sys.executable}" in result.output


def test_tmp_path_is_writable_in_the_jail(project: BenignProject) -> None:
    result = project.run("-q", "-k", "tmp_path")
    assert "1 passed" in result.output, result.output[-3000:]


def test_network_stays_off_unless_the_command_line_allows_it(
    project: BenignProject, listener: LoopbackListener
) -> None:
    listener.received.clear()
    denied = project.run("-rA", "-k", "wants_network")
    heard_when_denied = list(listener.received)
    allowed = project.run("-rA", "-k", "wants_network", "--isolate-untrusted-allow=network")
    assert "test_wants_network: network=True" in denied.output  # named as not granted
    assert "1 failed" in denied.output
    assert heard_when_denied == []
    # Granted: a second jail that keeps the host's network namespace, loopback included.
    assert "marks may loosen: network" in allowed.output
    assert "1 passed" in allowed.output, allowed.output[-3000:]
    assert "target started 2 time(s)" in allowed.output
    assert listener.received == [b"granted"]
