"""Real third-party suites (toolz, pluggy: sdists from PyPI, tests included) pass whole
under isolation with the same outcomes as without it, with targets forked ahead and not."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

# World-readable: a container's unprivileged user must read the suite (a home is often 0700).
CACHE = Path("/var/tmp/pytest-isolate-sdists")

# name -> (version, test path inside the sdist). pluggy is pinned to the installed
# version: its tests import the installed pluggy.
SUITES = {
    "toolz": ("1.2.0", "toolz"),
    "pluggy": (importlib.metadata.version("pluggy"), "testing"),
}


def _sdist(name: str, version: str) -> Path:
    """Download (once) and unpack the sdist; return its directory."""
    target = CACHE / f"{name}-{version}"
    if (target / "PKG-INFO").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    CACHE.chmod(0o755)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{name}=={version}",
            "-d",
            str(CACHE),
        ],
        check=True,
    )
    archive = next(CACHE.glob(f"{name}-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return target


def _outcomes(directory: Path, test_path: str, *args: str) -> dict[str, int]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            test_path,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-p",
            "no:randomly",
            *args,
        ],
        cwd=directory,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    last = [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    assert last, proc.stdout[-3000:]
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (\w+)", last[-1]) if kind != "in"}


@pytest.fixture(scope="module", params=sorted(SUITES))
def suite(request: pytest.FixtureRequest) -> tuple[Path, str, dict[str, int]]:
    version, test_path = SUITES[request.param]
    directory = _sdist(request.param, version)
    return directory, test_path, _outcomes(directory, test_path)


@pytest.mark.parametrize(
    "options",
    [
        "--isolate=process",
        # each target forked when its test starts, not while the test before runs
        "--isolate=process --isolate-no-prefork",
        "--isolate=seccomp",
        "--isolate=chroot",
        "--isolate=container:pytest-isolate/debian:bookworm",
    ],
)
def test_suite_has_the_same_outcomes_under_isolation(
    suite: tuple[Path, str, dict[str, int]], options: str
) -> None:
    directory, test_path, plain = suite
    isolated = _outcomes(directory, test_path, *options.split())
    assert plain.get("passed", 0) > 50
    assert isolated == plain
