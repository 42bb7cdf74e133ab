"""A spawned target's pytest runs with the broker's configuration, as a forked one does.

Side by side on every backend: a conftest option given on the command line,
``-W error::…``, ``-o filterwarnings=error`` and ``--tb``. A forked target
inherits all of it; a container, a guest and a jail on a foreign root are
told it (command-line arguments for what pytest reads while parsing, option
values as data for the rest).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

IMAGE = "pytest-isolate/debian:bookworm"
#: backend -> the isolate() arguments; {rootfs} is the exported image's root
BACKENDS = {
    "plain": None,
    "process": '"process"',
    "chroot": '"chroot"',
    "rootfs": '"chroot", rootfs={rootfs!r}',
    "container": f'"container", image="{IMAGE}"',
    "vm": '"vm"',
}

CONFTEST = """
def pytest_addoption(parser):
    parser.addoption("--target-env", default="dev")
"""


def _tests(rootfs: str) -> str:
    lines = ["import warnings", "from pytest_isolate import isolate", ""]
    for name, args in BACKENDS.items():
        mark = f"@isolate({args.format(rootfs=rootfs)})\n" if args else ""
        lines.append(
            f"""
{mark}def test_{name}_sees_the_option(request):
    print("target_env=" + request.config.getoption("target_env"))
    assert request.config.getoption("target_env") == "prod"

{mark}def test_{name}_deprecation_is_an_error():
    warnings.warn("old", DeprecationWarning)
"""
        )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pytest_isolate.container.engine import connect_engine
    from pytest_isolate.images.export import export_rootfs

    cache = Path(os.environ.get("PYTEST_ISOLATE_CACHE") or Path.home() / ".cache/pytest-isolate")
    with connect_engine() as engine:  # exported once, cached between runs
        rootfs = export_rootfs(engine, IMAGE, cache / "rootfs" / "bookworm")
    root = write_project(
        tmp_path_factory.mktemp("config"),
        {"conftest.py": CONFTEST, "test_config.py": _tests(str(rootfs))},
    )
    root.chmod(0o755)  # the container's agent runs as an unprivileged user
    return root


@pytest.fixture(scope="module")
def with_w(project: Path) -> ProjectRun:
    return run_pytest(project, "--target-env=prod", "-W", "error::DeprecationWarning", xdist=False)


@pytest.fixture(scope="module")
def with_o(project: Path) -> ProjectRun:
    return run_pytest(project, "--target-env=prod", "-o", "filterwarnings=error", xdist=False)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_conftest_option_from_the_command_line_reaches_every_target(
    with_w: ProjectRun, backend: str
) -> None:
    assert with_w.outcome(f"test_{backend}_sees_the_option") == "PASSED", with_w.output[-3000:]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_dash_w_turns_a_warning_into_an_error_in_every_target(
    with_w: ProjectRun, backend: str
) -> None:
    assert with_w.outcome(f"test_{backend}_deprecation_is_an_error") == "FAILED"
    assert "DeprecationWarning: old" in with_w.report_of(f"test_{backend}_deprecation_is_an_error")


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_dash_o_overrides_the_ini_in_every_target(with_o: ProjectRun, backend: str) -> None:
    assert with_o.outcome(f"test_{backend}_deprecation_is_an_error") == "FAILED"
    assert with_o.outcome(f"test_{backend}_sees_the_option") == "PASSED"
