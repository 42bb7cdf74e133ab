"""The built-in backends, registered through the same hook a third party uses."""

from __future__ import annotations

from collections.abc import Callable

from pytest_isolate.backends.base import Backend


def register_builtin_backends(register: Callable[[Backend], None]) -> None:
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
