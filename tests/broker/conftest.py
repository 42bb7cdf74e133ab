"""Fixtures of the core tests; generated runs go through ``project_runner`` (tests/)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A directory for a module's shared generated project."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def pid_dir(module_dir: Path) -> Path:
    """Where a generated project's processes write their pids, for after-run checks."""
    path = module_dir / "pids"
    path.mkdir()
    return path
