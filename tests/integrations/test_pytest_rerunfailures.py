"""pytest-rerunfailures reruns a failing isolated test in a fresh target, as in a plain run.

Each attempt leaves a mark where the next attempt can see it (a host
directory the target may write, or the shared target's own /tmp), so a test
that fails once passes on its rerun on every backend. The same project runs
with ``--no-isolate`` beside it: the reports must match.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from every_backend import EVERY_BACKEND
from project_runner import ProjectRun, run_pytest, write_project

IMAGE = "pytest-isolate/debian:bookworm"


def _backends(state: str) -> dict[str, tuple[str, str]]:
    """backend -> (isolate arguments, a directory its attempts share)."""
    return {
        "process": ('"process"', state),
        "seccomp": ('"seccomp"', state),
        "chroot": (f'"chroot", writable=[{state!r}]', state),
        "container": (f'"container", image="{IMAGE}"', "/tmp"),
        "vm": ('"vm"', "/tmp"),
    }


FLAKY = """
@isolate({args})
@pytest.mark.flaky(reruns=2)
def test_{name}_flaky():
    mark = os.path.join({where!r}, "rerun-{name}-" + {run_id!r})
    first = not os.path.exists(mark)
    open(mark, "w").close()
    assert not first, "fails on the first attempt only"

@isolate({args})
def test_{name}_always_fails():
    assert False
"""


@pytest.fixture(scope="module")
def project() -> Iterator[tuple[Path, Path]]:
    base = Path(tempfile.mkdtemp(prefix="rerun-", dir="/var/tmp"))
    state = base / "state"
    state.mkdir()
    state.chmod(0o1777)  # the seccomp and chroot targets write as an unprivileged user
    tests = "\n".join(
        FLAKY.format(args=args, name=name, where=where, run_id="{run_id}")
        for name, (args, where) in _backends(str(state)).items()
    )

    root = write_project(
        base / "project",
        {"test_flaky.py": "import os\nimport pytest\nfrom pytest_isolate import isolate\n"},
    )
    (root / "template.py").write_text(tests)
    root.chmod(0o755)
    base.chmod(0o755)
    try:
        yield root, state
    finally:
        shutil.rmtree(base, ignore_errors=True)
        for mark in Path("/tmp").glob("rerun-*-plain-*"):  # the plain run's container/vm tests
            mark.unlink()


def _run(project: tuple[Path, Path], run_id: str, *args: str) -> ProjectRun:
    root, _state = project
    body = (root / "template.py").read_text().replace("{run_id}", run_id)
    header = "import os\nimport pytest\nfrom pytest_isolate import isolate\n"
    (root / "test_flaky.py").write_text(header + body)
    return run_pytest(root, "test_flaky.py", "--reruns=1", *args, xdist=False)


def _outcomes(run: ProjectRun) -> list[str]:
    return sorted(
        line.split(" - ")[0]
        for line in run.lines
        if re.match(r"(PASSED|FAILED|RERUN) ", line) and "[isolate" not in line
    )


@pytest.fixture(scope="module")
def isolated(project: tuple[Path, Path]) -> ProjectRun:
    return _run(project, f"isolated-{uuid.uuid4().hex}")


@pytest.fixture(scope="module")
def plain(project: tuple[Path, Path]) -> ProjectRun:
    return _run(project, f"plain-{uuid.uuid4().hex}", "--no-isolate")


def test_a_flaky_test_passes_on_its_rerun_on_every_backend(isolated: ProjectRun) -> None:
    for backend in _backends("/"):
        assert isolated.outcome(f"test_{backend}_flaky") == "PASSED", isolated.output[-4000:]
        assert isolated.outcome(f"test_{backend}_always_fails") == "FAILED"


def test_the_summary_counts_reruns_as_a_plain_run_does(
    isolated: ProjectRun, plain: ProjectRun
) -> None:
    assert "5 failed, 5 passed, 10 rerun" in plain.output
    assert "5 failed, 5 passed, 10 rerun" in isolated.output
    assert _outcomes(isolated) == _outcomes(plain)


def test_each_attempt_is_a_new_target(isolated: ProjectRun) -> None:
    # flaky: fails, then passes on its rerun; always_fails: --reruns=1, two attempts
    assert "isolate process: 4 tests" in isolated.output


COUNTED = """
import pytest
from pytest_isolate import isolate
""" + "".join(
    f"""
@isolate({args})
@pytest.mark.flaky(reruns=1)
def test_{name}_sees_its_attempt(request):
    assert request.node.execution_count == 2, "passes on its second attempt only"
"""
    for name, args in EVERY_BACKEND.items()
)


def test_each_attempt_sees_pytest_rerunfailures_execution_count(tmp_path: Path) -> None:
    root = write_project(tmp_path / "counted", {"test_counted.py": COUNTED})
    root.chmod(0o755)  # the container's agent runs as an unprivileged user
    run = run_pytest(root, xdist=False)
    for backend in _backends("/"):
        assert run.outcome(f"test_{backend}_sees_its_attempt") == "PASSED", run.output[-3000:]
    assert "5 passed, 5 rerun" in run.output
