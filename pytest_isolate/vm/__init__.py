"""The QEMU guest layer: boot a Linux guest that runs one command on a channel.

``Guest.start(VMConfig(command=...))`` boots the host's kernel (unpacked once
and cached) with a generated busybox initramfs; the guest sees the system
directories, the Python prefix and the requested shares read-only over
virtio-9p, and runs the command as PID 1 with stdin/stdout on
``Guest.channel``. No network device, QEMU's seccomp sandbox on, and QEMU dies
with the broker.

The names below are imported on first use: the guest-side agent imports
``pytest_isolate.vm.guest_config`` (through the vm backend's marker
keywords) and would otherwise load QEMU's whole launcher with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_isolate.vm.accel import choose_accel
    from pytest_isolate.vm.errors import (
        BootFailed,
        BootTimeout,
        KernelMissing,
        QemuMissing,
        VMError,
    )
    from pytest_isolate.vm.guest import Guest
    from pytest_isolate.vm.guest_config import VMConfig
    from pytest_isolate.vm.vm_probe import vm_available, vm_doctor

#: Public name -> the module that defines it.
_API = {
    "BootFailed": "pytest_isolate.vm.errors",
    "BootTimeout": "pytest_isolate.vm.errors",
    "Guest": "pytest_isolate.vm.guest",
    "KernelMissing": "pytest_isolate.vm.errors",
    "QemuMissing": "pytest_isolate.vm.errors",
    "VMConfig": "pytest_isolate.vm.guest_config",
    "VMError": "pytest_isolate.vm.errors",
    "choose_accel": "pytest_isolate.vm.accel",
    "vm_available": "pytest_isolate.vm.vm_probe",
    "vm_doctor": "pytest_isolate.vm.vm_probe",
}

__all__ = [
    "BootFailed",
    "BootTimeout",
    "Guest",
    "KernelMissing",
    "QemuMissing",
    "VMConfig",
    "VMError",
    "choose_accel",
    "vm_available",
    "vm_doctor",
]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value
