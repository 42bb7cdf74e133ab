"""Backends registered by name are imported only when a test of the run uses them.

Every pytest that loads the plugin builds the registry: the broker, and the
agent inside each container and guest. Each checks the modules a real run
loaded, from inside that run (a conftest plugin, or the test itself in a
target), never a mock of the import system.
"""

from __future__ import annotations

from pathlib import Path

from project_runner import run_pytest, write_project

BACKEND_MODULES = {
    "process": "pytest_isolate.backends.process",
    "seccomp": "pytest_isolate.backends.seccomp",
    "chroot": "pytest_isolate.backends.chroot",
    "container": "pytest_isolate.backends.container",
    "vm": "pytest_isolate.backends.vm",
}

# The broker writes, at the end of its run, the backend modules it imported.
LOADED_AT_THE_END = """
    import pathlib, sys

    def pytest_unconfigure(config):
        loaded = sorted(m for m in sys.modules if m.startswith("pytest_isolate.backends."))
        pathlib.Path(__file__).with_name("loaded.txt").write_text("\\n".join(loaded))
"""


def _loaded(project: Path) -> set[str]:
    return set((project / "loaded.txt").read_text().split())


def test_a_run_imports_only_the_backends_its_tests_use(tmp_path: Path) -> None:
    project = write_project(
        tmp_path,
        {
            "conftest.py": LOADED_AT_THE_END,
            "test_some.py": """
                from pytest_isolate import isolate

                def test_plain():
                    pass

                @isolate("process")
                def test_forked():
                    pass
            """,
        },
    )
    run = run_pytest(project)
    assert run.outcome("test_forked") == "PASSED"
    loaded = _loaded(project)
    assert BACKEND_MODULES["process"] in loaded
    unused = {BACKEND_MODULES[name] for name in ("seccomp", "chroot", "container", "vm")}
    assert loaded.isdisjoint(unused), loaded & unused
    assert "pytest_isolate.container.engine_pool" not in loaded


def test_the_agent_in_a_container_imports_no_other_backend(tmp_path: Path) -> None:
    """The test runs in a fork of the container's agent: its modules are the agent's."""
    project = write_project(
        tmp_path,
        {
            "test_inside.py": f"""
                import sys
                from pytest_isolate import isolate

                OTHERS = {sorted(m for n, m in BACKEND_MODULES.items() if n != "container")!r}

                @isolate("container", image="pytest-isolate/debian:bookworm")
                def test_the_agent_loaded_no_forked_backend():
                    assert [m for m in OTHERS if m in sys.modules] == []
            """,
        },
    )
    project.chmod(0o755)  # the agent runs as nobody
    run = run_pytest(project)
    assert run.outcome("test_the_agent_loaded_no_forked_backend") == "PASSED", run.output


THIRD_PARTY = """
    import pathlib, sys
    from pytest_isolate import DeferredBackend

    def pytest_isolate_register_backends(register):
        register(DeferredBackend("slow", "slow_backend:SlowBackend"))
        register(DeferredBackend("broken", "broken_backend:BrokenBackend"))
        register(DeferredBackend("misnamed", "slow_backend:SlowBackend"))

    def pytest_unconfigure(config):
        imported = sorted(m for m in ("slow_backend", "broken_backend") if m in sys.modules)
        pathlib.Path(__file__).with_name("imported.txt").write_text(" ".join(imported))
"""

SLOW_BACKEND = """
    from pytest_isolate.backends.process import ProcessBackend

    class SlowBackend(ProcessBackend):
        name = "slow"
        summary = "a process, from a module imported only when needed"
        keywords = {"speed": "ignored"}
"""

BROKEN_BACKEND = """
    raise ImportError("no module named 'missing_dependency'")
"""


def _third_party_project(tmp_path: Path, tests: str) -> Path:
    return write_project(
        tmp_path,
        {
            "conftest.py": THIRD_PARTY,
            "slow_backend.py": SLOW_BACKEND,
            "broken_backend.py": BROKEN_BACKEND,
            "test_third.py": tests,
        },
    )


def test_a_deferred_third_party_backend_is_imported_when_a_test_uses_it(tmp_path: Path) -> None:
    unused = _third_party_project(tmp_path / "unused", "def test_plain():\n    pass\n")
    assert "1 passed" in run_pytest(unused).output
    assert (unused / "imported.txt").read_text() == ""

    used = _third_party_project(
        tmp_path / "used",
        """
            from pytest_isolate import isolate

            @isolate("slow", speed=1)
            def test_slow():
                pass
        """,
    )
    run = run_pytest(used)
    assert run.outcome("test_slow") == "PASSED", run.output
    assert "isolate slow: 1 test" in run.output
    assert (used / "imported.txt").read_text() == "slow_backend"


def test_a_backend_that_cannot_be_made_fails_its_tests_saying_why(tmp_path: Path) -> None:
    project = _third_party_project(
        tmp_path,
        """
            from pytest_isolate import isolate

            @isolate("broken", anything=1)
            def test_on_broken():
                pass

            @isolate("misnamed")
            def test_on_misnamed():
                pass

            def test_plain():
                pass
        """,
    )
    run = run_pytest(project)
    assert run.outcome("test_plain") == "PASSED"  # the run goes on
    broken = run.report_of("test_on_broken")
    assert (
        "backend 'broken' registered as 'broken_backend:BrokenBackend' could not be made: "
        "ImportError: no module named 'missing_dependency'" in broken
    )
    assert "fix: check that it imports: python -c 'import broken_backend'" in broken
    assert "could not be made: it is named 'slow'" in run.report_of("test_on_misnamed")
    doctor = run_pytest(project, "--isolate-doctor")
    assert "broken" in doctor.output and "missing_dependency" in doctor.output
