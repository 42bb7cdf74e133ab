"""Exceptions of the VM layer: each says what went wrong and how to fix it.

The backend turns these into a failed test or a doctor line, so the message
must stand on its own: a user reading only it should know the next step.
"""

from __future__ import annotations


class VMError(RuntimeError):
    """Base of every error raised while preparing, booting or running a guest."""


class QemuMissing(VMError):
    """``qemu-system-x86_64`` is not installed or not on PATH."""


class KernelMissing(VMError):
    """No guest kernel was given and none was found, or the given one is unusable."""


class BootFailed(VMError):
    """QEMU exited before the guest command produced any output.

    ``console_tail`` holds the end of the guest's console (kernel messages and
    the command's stderr), which usually names the cause.
    """

    def __init__(self, message: str, console_tail: str = "") -> None:
        if console_tail:
            message = f"{message}\n--- guest console (tail) ---\n{console_tail}"
        super().__init__(message)
        self.console_tail = console_tail


class BootTimeout(VMError):
    """The guest did not reach its command within ``boot_timeout`` seconds."""

    def __init__(self, message: str, console_tail: str = "") -> None:
        if console_tail:
            message = f"{message}\n--- guest console (tail) ---\n{console_tail}"
        super().__init__(message)
        self.console_tail = console_tail
