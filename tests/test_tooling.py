"""The tools contributors use to help themselves pass on the tree: lint, format, types, docs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_to_lint() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_finds_nothing_to_format() -> None:
    result = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_mypy_strict_passes_on_the_package() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout[-4000:]


def test_docs_build_strictly(tmp_path: Path) -> None:
    if shutil.which("mkdocs") is None:
        pytest.fail("mkdocs is not installed: run scripts/setup-machine")
    result = _run("mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
