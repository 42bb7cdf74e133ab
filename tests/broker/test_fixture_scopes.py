"""Fixtures above function scope in isolated tests: set up in the target, whatever ran first.

A forked target is a copy of the broker: it would see a session fixture's
value if a plain test happened to build it first, and build its own if not.
Each isolated test sets up the project's session, module and class fixtures
itself, on every backend and under both orders; the ini's
``isolate_inherit_fixtures`` asks for the old, order-dependent sharing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND
from project_runner import ProjectRun, run_pytest, write_project

CONFTEST = """
import os
import pytest

@pytest.fixture(scope="session")
def session_pid():
    return os.getpid()

@pytest.fixture(scope="module")
def module_pid():
    return os.getpid()
"""

ISOLATED = """
@isolate({args})
def test_isolated_{name}(session_pid, module_pid):
    assert (session_pid, module_pid) == (os.getpid(), os.getpid()), "set up elsewhere"
"""

PLAIN = """
def test_plain(session_pid, module_pid):
    assert session_pid == module_pid == os.getpid()
"""


def _module(plain_first: bool) -> str:
    isolated = "".join(
        ISOLATED.format(args=args, name=name) for name, args in EVERY_BACKEND.items()
    )
    body = PLAIN + isolated if plain_first else isolated + PLAIN
    return "import os\nfrom pytest_isolate import isolate\n" + body


@pytest.fixture(scope="module", params=["plain first", "isolated first"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    files = {"conftest.py": CONFTEST, "test_scopes.py": _module(request.param == "plain first")}
    project = write_project(tmp_path_factory.mktemp("scopes"), files)
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    return run_pytest(project, "-p", "no:randomly", xdist=False)


@pytest.mark.parametrize("backend", list(EVERY_BACKEND))
def test_each_isolated_test_sets_up_its_own_in_either_order(run: ProjectRun, backend: str) -> None:
    assert run.outcome(f"test_isolated_{backend}") == "PASSED", run.output[-3000:]
    assert run.outcome("test_plain") == "PASSED"


def test_the_ini_can_ask_for_the_brokers_values(tmp_path: Path) -> None:
    """Inherited: the process target sees the session fixture the plain test built."""
    module = (
        "import os\nfrom pytest_isolate import isolate\n"
        + PLAIN
        + ISOLATED.format(args='"process"', name="process")
    )
    project = write_project(
        tmp_path,
        {
            "conftest.py": CONFTEST,
            "test_scopes.py": module,
            "pytest.ini": "[pytest]\nisolate_inherit_fixtures = true\n",
        },
    )
    run = run_pytest(project, "-p", "no:randomly", xdist=False)
    assert run.outcome("test_isolated_process") == "FAILED"
    assert "set up elsewhere" in run.summary_line("test_isolated_process")


SHARED_CONFTEST = """
import os, uuid
import pytest

@pytest.fixture(scope="session")
def shared():
    return {"token": uuid.uuid4().hex, "pid": os.getpid(), "seen": []}
"""

SHARED_TEST = """
@isolate({args})
@pytest.mark.parametrize("n", range(3))
def test_{name}(shared, n):
    print("TOKEN", "{name}", shared["token"])
    assert shared["pid"] != os.getpid(), "set up in this test's own fork"
    assert shared["seen"] == [], "a change made by an earlier test leaked"
    shared["seen"].append(n)
"""

SPAWNED = {name: EVERY_BACKEND[name] for name in ("container", "vm")}


@pytest.mark.parametrize("share", [True, False], ids=["shared", "per-test"])
def test_the_ini_can_share_session_fixtures_within_a_spawned_target(
    tmp_path: Path, share: bool
) -> None:
    """Shared: one setup in the agent, the same value in every test of that target."""
    module = "import os\nimport pytest\nfrom pytest_isolate import isolate\n" + "".join(
        SHARED_TEST.format(args=args, name=name) for name, args in SPAWNED.items()
    )
    ini = f"[pytest]\nisolate_share_session_fixtures = {str(share).lower()}\n"
    files = {"conftest.py": SHARED_CONFTEST, "test_shared.py": module, "pytest.ini": ini}
    project = write_project(tmp_path, files)
    project.chmod(0o755)
    run = run_pytest(project, "-p", "no:randomly", "-rA", xdist=False)
    for name in SPAWNED:
        tokens = re.findall(rf"^TOKEN {name} (\w+)$", run.output, re.M)
        assert len(tokens) == 3, run.output[-4000:]
        if share:
            assert len(set(tokens)) == 1, tokens
            assert run.outcome(f"test_{name}[0]") == "PASSED", run.output[-4000:]
        else:
            assert len(set(tokens)) == 3, tokens
            # set up in the test's own fork: the pid check fails, as it should
            assert "set up in this test's own fork" in run.output
