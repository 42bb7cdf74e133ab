"""Hypothesis in every backend: the same falsifying example, saved and replayed as in a plain run.

One generated project holds the same property test plain and on every
backend. A first run must find and shrink the same counterexample
everywhere, with no warning about an unusable database. Its examples are
saved through the broker, so a second run that may only replay the database
(no generation) fails again, in every backend; the same replay-only run on
a project without a database finds nothing. Then hostile targets forge the
database changes they send, and a link in the project's database directory
must not carry the broker's writes elsewhere.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from every_backend import PLAIN_AND_EVERY_BACKEND, one_test_per_backend
from frame_forgery import SPRAY_FRAME
from project_runner import FRONT_DOOR, ProjectRun, run_pytest, write_project

from pytest_isolate.integrations.hypothesis import save_examples
from pytest_isolate.wire.example_frames import ExampleChange, example_name

BACKENDS = PLAIN_AND_EVERY_BACKEND

#: Profiles from hypothesis's root one, so that a CI machine's "ci" profile
#: (derandomized, no database) does not apply.
CONFTEST = """
from hypothesis import Phase, settings

root = settings.get_profile("default")
settings.register_profile("find", parent=root, deadline=None, derandomize=False)
settings.register_profile(
    "replay", parent=root, deadline=None, derandomize=False,
    phases=[Phase.explicit, Phase.reuse, Phase.shrink],
)
"""


def _tests() -> str:
    # hypothesis's decorator goes under the mark: ``given`` is the first line of the body
    source = one_test_per_backend(
        "from hypothesis import given, strategies as st\nfrom pytest_isolate import isolate\n",
        "(x):\n    assert x < 1000\n",
        BACKENDS,
    )
    return re.sub(r"^def test_", "@given(st.integers())\ndef test_", source, flags=re.M)


def _project(root: Path) -> Path:
    project = write_project(root, {"conftest.py": CONFTEST, "test_property.py": _tests()})
    project.chmod(0o755)  # the container's agent runs as an unprivileged user
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("hypothesis"))


@pytest.fixture(scope="module")
def found(project: Path) -> ProjectRun:
    return run_pytest(project, "--hypothesis-profile=find", "-W", "always", xdist=False)


@pytest.fixture(scope="module")
def replayed(project: Path, found: ProjectRun) -> ProjectRun:
    return run_pytest(project, "--hypothesis-profile=replay", xdist=False)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backend_finds_the_plain_runs_counterexample(found: ProjectRun, backend: str) -> None:
    assert found.outcome(f"test_{backend}") == "FAILED", found.output[-3000:]
    report = found.report_of(f"test_{backend}")
    assert "x=1000" in report, report
    assert "unusable" not in found.output  # hypothesis kept a real database in every target
    assert "plugins that" not in found.output  # hypothesis's plugin reaches every target


def test_the_examples_are_saved_by_the_broker(project: Path, found: ProjectRun) -> None:
    examples = project / ".hypothesis" / "examples"
    saved = [path for path in examples.glob("*/*") if path.is_file()]
    assert saved, found.output[-2000:]
    for path in saved:  # hypothesis's layout: each example named by the hash of its bytes
        assert path.name == example_name(path.read_bytes())
    assert not list(examples.glob("*/.*.pytest-isolate"))  # no partial writes left


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_next_run_replays_the_example_in_every_backend(
    replayed: ProjectRun, backend: str
) -> None:
    assert replayed.outcome(f"test_{backend}") == "FAILED", replayed.output[-3000:]
    assert "x=1000" in replayed.report_of(f"test_{backend}")


def test_without_a_database_the_replay_run_finds_nothing(tmp_path: Path, project: Path) -> None:
    """The control: the replayed failures came from the database, not from a search."""
    fresh = _project(tmp_path / "fresh")
    run = run_pytest(fresh, "--hypothesis-profile=replay", xdist=False)
    assert f"{len(BACKENDS)} skipped" in run.output, run.output[-3000:]


#: Untrusted mode's broker never reads the project's conftest, so the project
#: picks its profile itself (a file in the project says "replay").
UNTRUSTED_CONFTEST = (
    CONFTEST
    + """
import os
here = os.path.dirname(__file__)
settings.load_profile("replay" if os.path.exists(os.path.join(here, "REPLAY")) else "find")
"""
)


def test_untrusted_mode_saves_and_replays_too(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "untrusted",
        {
            "conftest.py": UNTRUSTED_CONFTEST,
            "test_property.py": "from hypothesis import given, strategies as st\n\n"
            "@given(st.integers())\ndef test_prop(x):\n    assert x < 1000\n",
        },
    )
    untrusted = (*FRONT_DOOR, "--isolate-untrusted=chroot")
    first = run_pytest(project, command=untrusted, xdist=False)
    assert "x=1000" in first.report_of("test_prop"), first.output[-3000:]
    assert list((project / ".hypothesis" / "examples").glob("*/*"))
    (project / "REPLAY").write_text("")
    again = run_pytest(project, command=untrusted, xdist=False)
    assert again.outcome("test_prop") == "FAILED", again.output[-3000:]
    assert "x=1000" in again.report_of("test_prop")


FORGERS = (
    SPRAY_FRAME
    + """
import base64, hashlib
from pytest_isolate import isolate

def spray(key, name, value):
    spray_frame({"type": "examples", "key": key, "name": name,
                 "value": None if value is None else base64.b64encode(value).decode()})

def name_of(value):
    return hashlib.sha384(value).hexdigest()[:16]

@isolate("process")
def test_names_a_path():
    spray("../../../../tmp/x", name_of(b"v"), b"v")

@isolate("process")
def test_misnames_its_bytes():
    spray("0123456789abcdef", "0123456789abcdef", b"not that")

@isolate("process")
def test_sends_a_huge_example():
    value = b"x" * (2 * 1024 * 1024)
    spray("0123456789abcdef", name_of(value), value)
"""
)


@pytest.mark.parametrize(
    ("test", "reason"),
    [
        ("test_names_a_path", "is not a hypothesis database name"),
        ("test_misnames_its_bytes", "is not the name of the bytes sent with it"),
        ("test_sends_a_huge_example", "is not base64 of at most 1048576 bytes"),
    ],
)
def test_a_forged_examples_frame_fails_its_test_with_the_reason(
    tmp_path: Path, test: str, reason: str
) -> None:
    project = write_project(tmp_path, {"test_forgers.py": FORGERS})
    run = run_pytest(project, f"test_forgers.py::{test}", xdist=False)
    assert run.outcome(test) in ("FAILED", "ERROR"), run.output[-3000:]
    assert reason in run.output
    assert not (project / ".hypothesis").exists()


def test_a_link_in_the_database_does_not_carry_the_brokers_writes(tmp_path: Path) -> None:
    """Untrusted mode's project owns ``.hypothesis``: a link there must lead nowhere."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project = tmp_path / "project"
    examples = project / ".hypothesis" / "examples"
    examples.mkdir(parents=True)
    (examples / "0123456789abcdef").symlink_to(elsewhere)
    from hypothesis import configuration

    configuration.set_hypothesis_home_dir(project / ".hypothesis")
    try:
        value = b"example"
        with pytest.warns(pytest.PytestWarning, match="were not saved"):
            save_examples([ExampleChange("0123456789abcdef", example_name(value), value)])
    finally:
        configuration.set_hypothesis_home_dir(None)
    assert list(elsewhere.iterdir()) == []
    shutil.rmtree(project)
