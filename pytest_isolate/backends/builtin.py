"""The built-in backends, registered through the same hook a third party uses.

Off Linux, the plugin still imports and runs unmarked tests; every built-in
backend is then registered as unavailable with the reason, so a marked test
fails (or skips, with ``--isolate-unavailable=skip``) saying why.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pytest_isolate.backends.base import Backend
from pytest_isolate.backends.registry import DeferredBackend, StandInBackend

#: Each built-in backend's class, imported when a run first needs it.
BUILTIN_PATHS = {
    "process": "pytest_isolate.backends.process:ProcessBackend",
    "seccomp": "pytest_isolate.backends.seccomp:SeccompBackend",
    "chroot": "pytest_isolate.backends.chroot:ChrootBackend",
    "container": "pytest_isolate.backends.container:ContainerBackend",
    "vm": "pytest_isolate.backends.vm:VMBackend",
}
BUILTIN_NAMES = tuple(BUILTIN_PATHS)


def unsupported_platform(name: str) -> StandInBackend:
    """Stands in for a Linux-only backend on another platform."""
    return StandInBackend(
        name,
        f"{name} (Linux only)",
        f"the {name} backend needs Linux; this is {sys.platform}",
        "run isolated tests on Linux (CI), or use --no-isolate here",
    )


def register_builtin_backends(register: Callable[[Backend | DeferredBackend], None]) -> None:
    """Each built-in backend, deferred: a run imports only the backends its tests use."""
    if not sys.platform.startswith("linux"):
        for name in BUILTIN_NAMES:
            register(unsupported_platform(name))
        return
    for name, path in BUILTIN_PATHS.items():
        register(DeferredBackend(name, path))
