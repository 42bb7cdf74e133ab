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

#: EVERY_BACKEND with a plain (unmarked) test first, for side-by-side comparisons.
PLAIN_AND_EVERY_BACKEND: dict[str, str | None] = {"plain": None, **EVERY_BACKEND}


def one_test_per_backend(header: str, test: str, backends: dict[str, str | None]) -> str:
    """A test module: ``header``, then ``test`` once per backend as ``test_NAME``.

    ``test`` is the body after ``def test_{name}``: it starts with the
    parameter list, and ``{name}`` in it is the backend's name. Each copy is
    marked ``isolate(ARGS)``; a backend whose arguments are None runs plain.
    """
    parts = [header]
    for name, args in backends.items():
        mark = f"@isolate({args})\n" if args else ""
        parts.append(f"\n{mark}def test_{name}" + test.replace("{name}", name))
    return "\n".join(parts)
