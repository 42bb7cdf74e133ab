"""Shared by every test directory: keep it small.

``pytester`` is enabled for the whole suite by ``-p pytester`` in pyproject's
addopts; helpers that only one area needs live in that area's conftest.
Being the rootdir's conftest, this file puts ``tests/`` on ``sys.path``
(pytest's default ``prepend`` import mode), so modules shared by every area,
such as ``project_runner``, import by their bare name, as each area's own
helpers do from its directory.
"""

from __future__ import annotations

import pytest
from e2e_modules import E2E, TESTS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: a slow end-to-end test (real sessions, engines, guests); see E2E"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = (
            item.path.relative_to(TESTS).as_posix() if item.path.is_relative_to(TESTS) else ""
        )
        if relative.startswith(E2E):
            item.add_marker(pytest.mark.e2e)
