"""Text from a target reaches the terminal and JUnit with its control characters made visible.

A hostile test puts escape sequences everywhere the broker prints from it:
its assertion message, its captured output, a warning, a user property, a
crash's output tail. On every backend (not only in untrusted mode) no raw escape reaches
the terminal or the JUnit file: each control character shows as ``\\x1b``.
Newlines and tabs stay.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND
from project_runner import ProjectRun, run_pytest, write_project

#: Retitles the terminal, clears it, and forges a line over the cursor.
HOSTILE = "\\x1b]0;owned\\x07\\x1b[2J\\rPASSED forged\\x9b31m"


def _tests() -> str:
    lines = ["import os, warnings", "from pytest_isolate import isolate", ""]
    for name, args in EVERY_BACKEND.items():
        lines.append(
            f"""
@isolate({args})
def test_fails_{name}(record_property):
    record_property("note", "property: {HOSTILE}")
    print("out:\\t{HOSTILE}")
    warnings.warn("warned: {HOSTILE}")
    assert False, "message: {HOSTILE}"

@isolate({args})
def test_crashes_{name}():
    print("tail: {HOSTILE}", flush=True)
    os._exit(7)
"""
        )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProjectRun, Path]:
    project = write_project(tmp_path_factory.mktemp("hostile-text"), {"test_text.py": _tests()})
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    junit = project.parent / f"{project.name}.junit.xml"
    return run_pytest(project, f"--junitxml={junit}", xdist=False), junit


def test_no_raw_control_character_reaches_the_terminal(run: tuple[ProjectRun, Path]) -> None:
    output = run[0].output
    assert "\x1b]0;owned" not in output and "\x1b[2J" not in output and "\x9b" not in output
    assert "\rPASSED forged" not in output


@pytest.mark.parametrize("backend", sorted(EVERY_BACKEND))
def test_each_kind_of_text_is_shown_escaped(run: tuple[ProjectRun, Path], backend: str) -> None:
    project_run = run[0]
    failed = project_run.report_of(f"test_fails_{backend}")
    assert "message: \\x1b]0;owned\\x07\\x1b[2J\\rPASSED forged\\x9b31m" in failed
    assert "out:\t\\x1b]0;owned" in failed  # the tab stays
    crashed = project_run.report_of(f"test_crashes_{backend}")
    assert "tail: \\x1b]0;owned" in crashed
    assert "warned: \\x1b]0;owned" in project_run.output


def test_junit_has_the_same_escaped_text(run: tuple[ProjectRun, Path]) -> None:
    text = Path(run[1]).read_text()
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    root = ElementTree.parse(run[1]).getroot()
    failures = [case.find("failure") for case in root.iter("testcase")]
    bodies = [f.text or "" for f in failures if f is not None]
    assert len(bodies) == 2 * len(EVERY_BACKEND)
    assert all("\\x1b]0;owned" in body for body in bodies)
    notes = [p.get("value") or "" for p in root.iter("property") if p.get("name") == "note"]
    assert len(notes) == len(EVERY_BACKEND)
    assert all(note.startswith("property: \\x1b]0;owned") for note in notes), notes
