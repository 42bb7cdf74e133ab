"""Off Linux the plugin imports, unmarked tests run, and marked tests say the backend needs Linux.

Simulated in a subprocess: ``sys.platform`` reads "darwin" and the POSIX-only
``resource`` module cannot be imported, before pytest loads the plugin.
"""

from __future__ import annotations

import sys
from pathlib import Path

from project_runner import ProjectRun, run_pytest, write_project

SIMULATED_PLATFORM = r"""
import builtins, sys
sys.platform = "darwin"
sys.modules.pop("resource", None)
_real_import = builtins.__import__
def _no_resource(name, *args, **kwargs):
    if name == "resource":
        raise ImportError("No module named 'resource' (simulated non-Linux)")
    return _real_import(name, *args, **kwargs)
builtins.__import__ = _no_resource
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""

PROJECT = """
from pytest_isolate import isolate

def test_unmarked():
    pass

@isolate("seccomp")
def test_marked():
    pass
"""


def _run(tmp_path: Path, *args: str) -> ProjectRun:
    write_project(tmp_path, {"test_portable.py": PROJECT})
    return run_pytest(tmp_path, *args, command=(sys.executable, "-c", SIMULATED_PLATFORM))


def test_marked_test_fails_saying_the_backend_needs_linux(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert "PASSED test_portable.py::test_unmarked" in result.output
    assert "the seccomp backend needs Linux; this is darwin" in result.output
    assert result.ret == 1


def test_unavailable_skip_turns_it_into_a_skip(tmp_path: Path) -> None:
    result = _run(tmp_path, "--isolate-unavailable=skip")
    assert "PASSED test_portable.py::test_unmarked" in result.output
    assert "SKIPPED [1] test_portable.py:6: [isolate:seccomp] backend 'seccomp'" in result.output


def test_doctor_lists_every_backend_as_linux_only(tmp_path: Path) -> None:
    result = _run(tmp_path, "--isolate-doctor")
    for name in ("process", "seccomp", "chroot", "container", "vm"):
        assert f"the {name} backend needs Linux" in result.output
