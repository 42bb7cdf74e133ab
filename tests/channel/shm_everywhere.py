"""A pytest plugin that puts every *generated* run of a suite on the shm channel.

The core and backend suites check behaviour through pytest subprocesses on
generated projects. Loaded into the outer run, this plugin makes those inner
runs use ``--isolate-channel=shm``, so the whole suite doubles as the shm
channel's regression test::

    PYTHONPATH=tests/channel python -m pytest -p shm_everywhere tests/core \\
        tests/backends/test_seccomp_backend.py

The outer run itself is unchanged (its options are parsed before this runs).
"""

from __future__ import annotations

import os
import sys

import pytest

FLAG = "--isolate-channel=shm"


def pytest_configure(config: pytest.Config) -> None:
    current = os.environ.get("PYTEST_ADDOPTS", "")
    if FLAG not in current:
        os.environ["PYTEST_ADDOPTS"] = f"{current} {FLAG}".strip()


def pytest_collection_finish(session: pytest.Session) -> None:
    """The core helpers strip the outer PYTEST_ADDOPTS from inner runs; keep ours."""
    helpers = sys.modules.get("core_helpers")
    outer_only = getattr(helpers, "_OUTER_ONLY", None)
    if isinstance(outer_only, tuple):
        helpers._OUTER_ONLY = tuple(n for n in outer_only if n != "PYTEST_ADDOPTS")  # type: ignore[union-attr]
