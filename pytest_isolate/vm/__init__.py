"""The QEMU guest layer: boot a Linux guest that runs one command on a channel.

``Guest.start(VMConfig(command=...))`` boots the host's kernel (unpacked once
and cached) with a generated busybox initramfs; the guest sees the system
directories, the Python prefix and the requested shares read-only over
virtio-9p, and runs the command as PID 1 with stdin/stdout on
``Guest.channel``. No network device, QEMU's seccomp sandbox on, and QEMU dies
with the broker.
"""

from __future__ import annotations

from pytest_isolate.vm.accel import choose_accel
from pytest_isolate.vm.errors import BootFailed, BootTimeout, KernelMissing, QemuMissing, VMError
from pytest_isolate.vm.guest import Guest
from pytest_isolate.vm.guest_config import VMConfig
from pytest_isolate.vm.vm_probe import vm_available, vm_doctor

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
