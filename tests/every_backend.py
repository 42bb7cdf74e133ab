"""The ``isolate(...)`` arguments that put a generated test on each backend, for side-by-side tests.

Found from every test directory, as ``project_runner`` is (``tests/conftest.py``).
"""

from __future__ import annotations

#: The offline-built image every container test uses (``python -m pytest_isolate image build``).
IMAGE = "pytest-isolate/debian:bookworm"

#: backend name -> the arguments of its ``isolate(...)`` mark in a generated test.
EVERY_BACKEND = {
    "process": '"process"',
    "seccomp": '"seccomp"',
    "chroot": '"chroot"',
    "container": f'"container", image="{IMAGE}"',
    "vm": '"vm"',
}
