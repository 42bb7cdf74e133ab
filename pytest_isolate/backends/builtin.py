"""The built-in backends, registered through the same hook a third party uses.

Off Linux, the plugin still imports and runs unmarked tests; every built-in
backend is then registered as unavailable with the reason, so a marked test
fails (or skips, with ``--isolate-unavailable=skip``) saying why.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from pytest_isolate.backends.base import Availability, Backend, TargetResult
from pytest_isolate.backends.registry import DeferredBackend

#: Each built-in backend's class, imported when a run first needs it.
BUILTIN_PATHS = {
    "process": "pytest_isolate.backends.process:ProcessBackend",
    "seccomp": "pytest_isolate.backends.seccomp:SeccompBackend",
    "chroot": "pytest_isolate.backends.chroot:ChrootBackend",
    "container": "pytest_isolate.backends.container:ContainerBackend",
    "vm": "pytest_isolate.backends.vm:VMBackend",
}
BUILTIN_NAMES = tuple(BUILTIN_PATHS)


class UnsupportedPlatformBackend:
    """Stands in for a Linux-only backend on another platform."""

    keywords: Mapping[str, str] = {}

    def __init__(self, name: str) -> None:
        self.name = name
        self.summary = f"{name} (Linux only)"

    def availability(self) -> Availability:
        return Availability(
            False,
            f"the {self.name} backend needs Linux; this is {sys.platform}",
            "run isolated tests on Linux (CI), or use --no-isolate here",
        )

    def validate(self, spec: object, where: str) -> None:
        pass

    def variants(self, spec: object) -> list[object]:
        return [spec]

    def run(self, item: object, spec: object, context: object) -> TargetResult:
        raise RuntimeError(self.availability().reason)

    def close(self) -> None:
        pass


def register_builtin_backends(register: Callable[[Backend | DeferredBackend], None]) -> None:
    """Each built-in backend, deferred: a run imports only the backends its tests use."""
    if not sys.platform.startswith("linux"):
        for name in BUILTIN_NAMES:
            register(UnsupportedPlatformBackend(name))  # type: ignore[arg-type]
        return
    for name, path in BUILTIN_PATHS.items():
        register(DeferredBackend(name, path))
