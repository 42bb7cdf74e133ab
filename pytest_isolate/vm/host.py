"""Facts about the host that choosing and launching a guest depends on.

Thin readers of the OS, each failing softly (``None``/empty) so that the pure
decision code above them decides what a missing fact means.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

from pytest_isolate.vm.errors import QemuMissing
from pytest_isolate.vm.guest_arch import HOST_GUEST, GuestArch

QEMU_NAME = HOST_GUEST.qemu


def qemu_binary(arch: GuestArch = HOST_GUEST) -> str:
    """Path of the architecture's QEMU or raise ``QemuMissing`` saying how to install it."""
    path = shutil.which(arch.qemu)
    if path is None:
        raise QemuMissing(
            f"{arch.qemu} is not on PATH; install QEMU "
            f"(Debian/Ubuntu: apt-get install {arch.qemu_package})"
        )
    return path


@functools.cache
def qemu_version(qemu: str) -> str:
    """First line of ``qemu --version``, e.g. ``QEMU emulator version 7.2.22 (...)``."""
    done = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=False)
    return (done.stdout.splitlines() or ["unknown"])[0].strip()


@functools.cache
def machine_types(qemu: str) -> frozenset[str]:
    """Machine types this QEMU knows (``-machine help``)."""
    done = subprocess.run([qemu, "-machine", "help"], capture_output=True, text=True, check=False)
    return frozenset(line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip())


def boot_id() -> str:
    """Changes on every host reboot: part of the key of the cached KVM verdict."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown-boot"


def cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return handle.read()
    except OSError:
        return ""


def cpu_signature(text: str) -> str:
    """The first CPU's model name and flags from /proc/cpuinfo text: what a saved guest saw."""
    wanted = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("vendor_id", "model name", "flags") and key not in wanted:
            wanted[key] = value.strip()
    return " | ".join(wanted.get(key, "") for key in ("vendor_id", "model name", "flags"))


def kernel_hz(release: str) -> int:
    """CONFIG_HZ of the guest kernel from /boot/config-<release>; 250 (Debian's) if unknown."""
    try:
        with open(f"/boot/config-{release}") as handle:
            for line in handle:
                if line.startswith("CONFIG_HZ="):
                    return int(line.split("=", 1)[1])
    except (OSError, ValueError):
        pass
    return 250


def kvm_device_problem() -> str | None:
    """Why /dev/kvm cannot be used, or None when it opens read-write."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return "/dev/kvm does not exist (no KVM module, or not passed into this container)"
    except PermissionError:
        return "/dev/kvm is not accessible (add the user to the 'kvm' group)"
    except OSError as exc:
        return f"/dev/kvm cannot be opened: {exc.strerror}"
    os.close(fd)
    return None


def python_prefixes() -> list[str]:
    """Directories the running interpreter needs: its prefix (and a venv's base)."""
    seen: list[str] = []
    for path in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix):
        real = os.path.realpath(path)
        if real not in seen:
            seen.append(real)
    return seen
