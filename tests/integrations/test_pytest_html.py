"""pytest-html: an isolated test's row in the HTML report is the plain run's row.

One generated project has the same failing test plain and on every backend;
each attaches a text extra and prints. The report of an isolated run and of
a ``--no-isolate`` run must show, test by test, the same result, the same
extras and the captured output. Then a target's extras that would put
markup, a script link or a path into the broker's report are refused or
defused. pytest-html lives in the plugins' own venv (``plugins_venv``).
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from every_backend import PLAIN_AND_EVERY_BACKEND, one_test_per_backend
from plugins_venv import plugins_python
from project_runner import ProjectRun, run_pytest, write_project

BACKENDS = PLAIN_AND_EVERY_BACKEND


def _tests() -> str:
    return one_test_per_backend(
        "import pytest_html\nfrom pytest_isolate import isolate\n",
        """(extras):
    extras.append(pytest_html.extras.text("attached by the test"))
    extras.append(pytest_html.extras.url("https://example.invalid/log"))
    print("captured out")
    assert 1 == 2
""",
        BACKENDS,
    )


def _rows(run: ProjectRun, report: Path) -> dict[str, list[dict[str, Any]]]:
    text = report.read_text()
    blob = re.search(r'data-jsonblob="([^"]*)"', text)
    assert blob, run.output[-2000:]
    return json.loads(html.unescape(blob.group(1)))["tests"]


def _extras(row: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for extra in row.get("extras", []):
        content = extra["content"]
        if content.startswith("data:"):
            content = base64.b64decode(content.split(",", 1)[1]).decode()
        found.append((extra["format_type"], content))
    return found


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[dict[str, Any]]]]:
    project = write_project(tmp_path_factory.mktemp("html"), {"test_report.py": _tests()})
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    command = (str(plugins_python()), "-m", "pytest", "-p", "no:randomly")
    found = {}
    for name, extra in (("plain", ("--no-isolate",)), ("isolated", ())):
        report = project / f"{name}.html"
        run = run_pytest(
            project,
            f"--html={report}",
            "--self-contained-html",
            *extra,
            command=command,
            xdist=False,
        )
        assert f"{len(BACKENDS)} failed" in run.output, run.output[-3000:]
        found[name] = _rows(run, report)
    return found


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_backends_row_is_the_plain_runs(rows: dict[str, Any], backend: str) -> None:
    nodeid = f"test_report.py::test_{backend}"
    (plain,) = rows["plain"][nodeid]
    (isolated,) = rows["isolated"][nodeid]
    assert isolated["result"] == plain["result"] == "Failed"
    assert (
        _extras(isolated)
        == _extras(plain)
        == [
            ("text", "attached by the test"),
            ("url", "https://example.invalid/log"),
        ]
    )
    assert "captured out" in isolated["log"]


HOSTILE = """
import pytest_html
from pytest_isolate import isolate

@isolate("process")
def test_markup(extras):
    extras.append(pytest_html.extras.html("<script>alert('from the target')</script>"))

@isolate("process")
def test_script_link(extras):
    extras.append(pytest_html.extras.url("javascript:alert(1)"))

@isolate("process")
def test_path_in_extension(extras):
    extras.append(pytest_html.extras.extra("x", "text", "x", "text/plain", "/../../../tmp/owned"))
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProjectRun, Path]:
    project = write_project(tmp_path_factory.mktemp("html-hostile"), {"test_hostile.py": HOSTILE})
    command = (str(plugins_python()), "-m", "pytest", "-p", "no:randomly")
    report = project / "report.html"
    return run_pytest(project, f"--html={report}", command=command, xdist=False), report


def test_a_targets_markup_is_shown_as_text(hostile: tuple[ProjectRun, Path]) -> None:
    run, report = hostile
    assert run.outcome("test_markup") == "PASSED", run.output[-3000:]
    (row,) = _rows(run, report)["test_hostile.py::test_markup"]
    assert [extra["format_type"] for extra in row["extras"]] == ["text"]
    assert "<script>alert('from the target')" not in report.read_text()


@pytest.mark.parametrize(
    ("test", "reason"),
    [
        ("test_script_link", "an http or https address for a url extra"),
        ("test_path_in_extension", "letters and digits (it becomes part of a file name)"),
    ],
)
def test_a_script_link_or_a_path_fails_its_test(
    hostile: tuple[ProjectRun, Path], test: str, reason: str
) -> None:
    run, _report = hostile
    assert run.outcome(test) in ("FAILED", "ERROR"), run.output[-3000:]
    assert reason in run.output
    assert not Path("/tmp/owned").exists()
