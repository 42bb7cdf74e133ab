"""A pytest plugin that puts every *generated* run of a suite on the shm channel.

The core and backend suites check behaviour through pytest subprocesses on
generated projects. Loaded into the outer run, this plugin makes those inner
runs use ``--isolate-channel=shm``, so the whole suite doubles as the shm
channel's regression test::

    PYTHONPATH=tests/channel python -m pytest -p shm_everywhere tests/broker \\
        tests/backends/test_seccomp_backend.py

The outer run itself is unchanged: the flag reaches only the runs that
``project_runner`` starts, which otherwise drop the outer PYTEST_ADDOPTS.
"""

from __future__ import annotations

import os

import pytest

FLAG = "--isolate-channel=shm"
#: Read by ``project_runner`` (tests/project_runner.py): the PYTEST_ADDOPTS of every inner run.
INNER_ADDOPTS = "ISOLATE_TESTS_INNER_ADDOPTS"


def pytest_configure(config: pytest.Config) -> None:
    current = os.environ.get(INNER_ADDOPTS, "")
    if FLAG not in current:
        os.environ[INNER_ADDOPTS] = f"{current} {FLAG}".strip()
