"""A fresh container is started while the test before it runs, and never outlives the run.

Under ``isolate_prefork`` (the default) the broker creates and starts the
next two tests' fresh containers, and sends their agents the start request,
before the current test runs; the agents collect meanwhile. Side by side
with ``--isolate-no-prefork``: the same outcomes, a container per test, and
the next two tests' containers already there while the one before reports.
A run stopped by ``-x`` leaves no container started ahead behind.

The agents import pytest and this package from the injected site, compiled
once by the broker: a target never compiles them itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from container_project import BOOKWORM, ContainerRun, hosts, run_project, wait_no_containers

#: In the broker only (SEEN_FILE is not passed into containers): the containers of
#: this broker that exist when test_first's result is reported.
SEEN_CONFTEST = """
import json, os, time

# In a container (no SEEN_FILE there), when asked: the agent answers "collected" late,
# so that a container removed while the test before reports cannot have answered yet.
_HERE = os.path.dirname(os.path.abspath(__file__))
if not os.environ.get("SEEN_FILE") and os.path.exists(os.path.join(_HERE, "slow-collection")):
    time.sleep(3)

def pytest_runtest_logreport(report):
    path = os.environ.get("SEEN_FILE")
    if not path or report.when != "call" or not report.nodeid.endswith("test_first"):
        return
    import docker
    client = docker.from_env()
    try:
        found = client.api.containers(
            filters={"label": "org.pytest-isolate.broker-pid=%d" % os.getpid()}
        )
        if os.environ.get("KILL_AHEAD"):  # their engine "lost" them before their tests
            for summary in found:
                client.api.remove_container(summary["Id"], force=True)
    finally:
        client.close()
    with open(path, "w") as fh:
        json.dump([summary["Id"][:12] for summary in found], fh)
"""

FRESH = f"""
import socket
from pytest_isolate import isolate

@isolate("container", image="{BOOKWORM}", fresh=True)
def test_first():
    print("HOST", socket.gethostname())

@isolate("container", image="{BOOKWORM}", fresh=True)
def test_second():
    print("HOST", socket.gethostname())
    assert False, "fails on purpose"

@isolate("container", image="{BOOKWORM}", fresh=True)
def test_third():
    print("HOST", socket.gethostname())
"""

SITE_IMPORTS = f"""
import importlib.util, os, sys
import pluggy, pytest
from pytest_isolate import isolate

@isolate("container", image="{BOOKWORM}", fresh=True)
def test_imports_come_from_compiled_code():
    for module in (pytest, pluggy, sys.modules["pytest_isolate.agent.server"]):
        cached = module.__spec__.cached
        assert cached and os.path.isfile(cached), module.__name__
        with open(cached, "rb") as fh:
            header = fh.read(8)
        assert header[:4] == importlib.util.MAGIC_NUMBER, module.__name__
"""


def _run(
    root: Path, *args: str, env: dict[str, str] | None = None, slow: bool = False
) -> tuple[ContainerRun, list[str]]:
    seen = root.parent / f"{root.name}.seen.json"
    files = {"fresh/conftest.py": SEEN_CONFTEST, "fresh/test_fresh.py": FRESH}
    if slow:
        files["fresh/slow-collection"] = ""
    run = run_project(
        root,
        files,
        "fresh",
        *args,
        env={"SEEN_FILE": str(seen), **(env or {})},
    )
    return run, json.loads(seen.read_text()) if seen.exists() else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ContainerRun, list[str]]]:
    return {
        "ahead": _run(tmp_path_factory.mktemp("ahead")),
        "no-prefork": _run(tmp_path_factory.mktemp("no-prefork"), "--isolate-no-prefork"),
    }


def test_outcomes_are_the_same_with_and_without_starting_ahead(
    runs: dict[str, tuple[ContainerRun, list[str]]],
) -> None:
    for run, _seen in runs.values():
        assert run.outcome("test_first") == "PASSED", run.output[-3000:]
        assert run.outcome("test_second") == "FAILED"
        assert run.outcome("test_third") == "PASSED"
        assert "fails on purpose" in run.output
        assert len(set(hosts(run).values())) == 3, run.output[-3000:]  # a container each
        assert wait_no_containers(run.broker_pid, timeout=15) == []


def test_the_next_two_containers_are_up_while_the_test_before_reports(
    runs: dict[str, tuple[ContainerRun, list[str]]],
) -> None:
    run, seen = runs["ahead"]
    assert hosts(run)["test_second"] in seen, (seen, hosts(run))
    assert hosts(run)["test_third"] in seen, (seen, hosts(run))
    run, seen = runs["no-prefork"]
    assert hosts(run)["test_second"] not in seen, (seen, hosts(run))
    assert hosts(run)["test_third"] not in seen, (seen, hosts(run))


def test_a_container_started_ahead_that_died_is_replaced(tmp_path: Path) -> None:
    run, seen = _run(tmp_path / "killed", env={"KILL_AHEAD": "1"}, slow=True)
    assert len(seen) == 2, seen  # test_second's and test_third's, removed before they answered
    assert run.outcome("test_first") == "PASSED", run.output[-3000:]
    assert run.outcome("test_second") == "FAILED" and "fails on purpose" in run.output
    assert run.outcome("test_third") == "PASSED", run.output[-3000:]
    assert not set(seen) & {hosts(run)["test_second"], hosts(run)["test_third"]}
    assert wait_no_containers(run.broker_pid, timeout=15) == []


def test_a_run_stopped_by_x_leaves_no_container_started_ahead(tmp_path: Path) -> None:
    run, _seen = _run(tmp_path / "stopped", "-x", "--deselect", "fresh/test_fresh.py::test_first")
    assert run.outcome("test_second") == "FAILED", run.output[-3000:]
    assert "test_third" not in hosts(run)
    assert wait_no_containers(run.broker_pid, timeout=15) == []


def test_agents_import_the_sites_compiled_code(tmp_path: Path) -> None:
    run = run_project(tmp_path / "site", {"test_site.py": SITE_IMPORTS})
    assert run.outcome("test_imports_come_from_compiled_code") == "PASSED", run.output[-3000:]


def test_the_injected_site_is_compiled_and_readable_by_anyone(tmp_path: Path) -> None:
    from pytest_isolate.backends.inject import injected_site

    site = injected_site(tmp_path / "cache")
    source = site / "pluggy" / "__init__.py"
    compiled = Path(importlib.util.cache_from_source(str(source)))
    assert compiled.is_file()
    header = compiled.read_bytes()[:8]
    assert header[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(header[4:8], "little") == 0b01  # a hash-based pyc, never checked
    assert compiled.stat().st_mode & 0o777 == 0o644
    assert compiled.parent.stat().st_mode & 0o777 == 0o755


def test_a_new_site_takes_what_an_earlier_one_compiled(tmp_path: Path) -> None:
    """A project with a plugin of its own makes a new copy: only that plugin is compiled."""
    from pytest_isolate.backends.inject import BYTECODE, injected_site

    first = injected_site(tmp_path / "cache")
    store = tmp_path / "cache" / BYTECODE
    before = set(store.iterdir())
    plugin = tmp_path / "plugins" / "project_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text("def pytest_configure(config):\n    pass\n")
    sys.path.insert(0, str(plugin.parent))
    try:
        second = injected_site(tmp_path / "cache", modules=("project_plugin",))
    finally:
        sys.path.remove(str(plugin.parent))
    assert second != first
    assert len(set(store.iterdir()) - before) == 1  # the plugin alone
    name = f"pluggy/__pycache__/__init__.{sys.implementation.cache_tag}.pyc"
    assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (second / "__pycache__").is_dir()


def test_stale_copies_and_compiled_modules_are_pruned(tmp_path: Path) -> None:
    from pytest_isolate.backends.inject import BYTECODE, injected_site, prune_stale

    site = injected_site(tmp_path / "cache")
    store = tmp_path / "cache" / BYTECODE
    old = store / "0123-old.pyc"
    old.write_bytes(b"")
    for path in (site, old):
        os.utime(path, (0, 0))
    prune_stale(tmp_path / "cache")
    assert not site.exists() and not old.exists()
    assert store.is_dir() and any(store.iterdir())  # what is still in use stays
    made_before_the_store = tmp_path / "older" / "0123456789abcdef0123"
    made_before_the_store.mkdir(parents=True)
    os.utime(made_before_the_store, (0, 0))
    prune_stale(tmp_path / "older")
    assert not made_before_the_store.exists()
