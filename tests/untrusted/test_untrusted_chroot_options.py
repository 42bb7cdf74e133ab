"""``--isolate-untrusted=chroot``: pytest's options, tightening marks, env, network, packages.

A benign project under /var/tmp, run with real brokers (``python -P -m
pytest_isolate.untrusted``) in a real namespace jail, and a real loopback
listener on the host for the network checks.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

UNTRUSTED = "--isolate-untrusted=chroot"

TESTS = """
import os, socket, sys, time
import pytest
from pytest_isolate import isolate

PORT = {port}

def test_pass():
    pass

@pytest.mark.slow
def test_slow():
    pass

@isolate("chroot", timeout=1)
def test_tight_timeout():
    time.sleep(30)

def test_env():
    print("DB_URL=" + os.environ.get("DB_URL", "<unset>"))
    print("BROKER_ONLY=" + os.environ.get("BROKER_ONLY", "<unset>"))

@isolate("chroot", network=True)
def test_wants_network():
    with socket.create_connection(("127.0.0.1", PORT), timeout=3) as conn:
        conn.sendall(b"granted")

def test_host_packages_and_injected_site():
    import hypothesis  # installed in the host's environment, as a CI job installs deps
    import pytest_isolate
    print("pytest_isolate from", os.path.dirname(pytest_isolate.__file__))
    print("checkout visible:", os.path.exists({checkout!r}))
    print("uid", os.getuid(), "python", sys.executable)

def test_tmp_path_is_writable(tmp_path):
    (tmp_path / "scratch").write_text("ok")
"""


class Listener:
    """A loopback TCP listener on the host that records what arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        try:
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    conn.settimeout(2)
                    self.received.append(conn.recv(100))
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    served = Listener()
    try:
        yield served
    finally:
        served.close()


@pytest.fixture(scope="module")
def project(listener: Listener) -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="ut-chroot-opts-", dir="/var/tmp"))
    parent.chmod(0o755)
    base = parent / "project"  # digit-free: -k also matches the rootdir's name
    base.mkdir(mode=0o755)
    (base / "pytest.ini").write_text("[pytest]\nmarkers = slow: slow tests\n")
    checkout = str(Path(__file__).resolve().parents[2])
    tests = TESTS.format(port=listener.port, checkout=checkout)
    (base / "test_things.py").write_text(textwrap.dedent(tests))
    try:
        yield base
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def broker(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DB_URL": "postgres://ci", "BROKER_ONLY": "hidden"}
    command = [sys.executable, "-P", "-m", "pytest_isolate.untrusted", UNTRUSTED, "--color=no"]
    return subprocess.run(
        [*command, "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_collect_only_lists_the_jailed_agents_node_ids(project: Path) -> None:
    result = broker(project, "--co", "-q")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "test_things.py::test_tmp_path_is_writable" in result.stdout.splitlines()
    assert "7 tests collected" in result.stdout


def test_m_selects_by_mark(project: Path) -> None:
    result = broker(project, "-q", "-m", "slow")
    assert "1 passed, 6 deselected" in result.stdout


def test_a_mark_can_tighten_the_timeout(project: Path) -> None:
    result = broker(project, "-q", "-k", "tight", "--isolate-timeout=60")
    assert "timed out after 1 s" in result.stdout


def test_only_env_named_on_the_command_line_reaches_the_tests(project: Path) -> None:
    result = broker(project, "-rA", "-k", "test_env", "--isolate-untrusted-env=DB_URL")
    assert "DB_URL=postgres://ci" in result.stdout
    assert "BROKER_ONLY=<unset>" in result.stdout


def test_the_hosts_packages_run_with_the_injected_pytest_isolate_as_nobody(
    project: Path,
) -> None:
    result = broker(project, "-rA", "-k", "host_packages")
    assert "1 passed" in result.stdout, result.stdout[-3000:]
    assert "pytest_isolate from /opt/pytest-isolate/site/pytest_isolate" in result.stdout
    assert "checkout visible: False" in result.stdout
    assert f"uid 65534 python {sys.executable}" in result.stdout


def test_tmp_path_is_writable_in_the_jail(project: Path) -> None:
    result = broker(project, "-q", "-k", "tmp_path")
    assert "1 passed" in result.stdout, result.stdout[-3000:]


def test_network_stays_off_unless_the_command_line_allows_it(
    project: Path, listener: Listener
) -> None:
    listener.received.clear()
    denied = broker(project, "-rA", "-k", "wants_network")
    heard_when_denied = list(listener.received)
    allowed = broker(project, "-rA", "-k", "wants_network", "--isolate-untrusted-allow=network")
    assert "test_wants_network: network=True" in denied.stdout  # named as not granted
    assert "1 failed" in denied.stdout
    assert heard_when_denied == []
    # Granted: a second jail that keeps the host's network namespace, loopback included.
    assert "marks may loosen: network" in allowed.stdout
    assert "1 passed" in allowed.stdout, allowed.stdout[-3000:]
    assert "target started 2 time(s)" in allowed.stdout
    assert listener.received == [b"granted"]
