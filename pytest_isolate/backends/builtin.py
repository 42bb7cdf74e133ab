"""The built-in backends, registered through the same hook a third party uses.

Off Linux, the plugin still imports and runs unmarked tests; every built-in
backend is then registered as unavailable with the reason, so a marked test
fails (or skips, with ``--isolate-unavailable=skip``) saying why.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from pytest_isolate.backends.base import Availability, Backend, TargetResult

BUILTIN_NAMES = ("process", "seccomp", "chroot", "container", "vm")


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


def register_builtin_backends(register: Callable[[Backend], None]) -> None:
    if not sys.platform.startswith("linux"):
        for name in BUILTIN_NAMES:
            register(UnsupportedPlatformBackend(name))  # type: ignore[arg-type]
        return
    from pytest_isolate.backends.process import ProcessBackend
    from pytest_isolate.backends.seccomp import SeccompBackend

    register(ProcessBackend())
    register(SeccompBackend())
    from pytest_isolate.backends.chroot import ChrootBackend

    register(ChrootBackend())
    from pytest_isolate.backends.vm import VMBackend

    register(VMBackend())
    from pytest_isolate.backends.container import ContainerBackend

    register(ContainerBackend())
