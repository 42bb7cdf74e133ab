"""What works here: QEMU, a guest kernel with its modules, busybox, KVM or TCG."""

from __future__ import annotations

import os

from pytest_isolate.vm import host
from pytest_isolate.vm.errors import VMError
from pytest_isolate.vm.initramfs import busybox_path
from pytest_isolate.vm.kernel import default_kernel, kernel_release


def vm_available() -> tuple[bool, str]:
    """Whether a guest can be started here, without booting one (cheap)."""
    try:
        qemu = host.qemu_binary()
        kernel = default_kernel()
        busybox_path()
    except VMError as exc:
        return False, str(exc)
    release = kernel_release(kernel)
    if not os.path.isfile(f"/lib/modules/{release}/modules.dep"):
        return False, f"no modules for guest kernel {release}; install its kernel package"
    return True, f"{host.qemu_version(qemu)}; kernel {kernel}"


def vm_doctor(probe_accel: bool = True) -> list[tuple[str, bool, str]]:
    """(check, ok, detail) lines for ``--isolate-doctor``.

    With ``probe_accel`` the KVM verdict is computed (this may boot a probe
    guest once per host boot).
    """
    lines: list[tuple[str, bool, str]] = []
    try:
        qemu = host.qemu_binary()
        lines.append(("qemu", True, f"{qemu}: {host.qemu_version(qemu)}"))
    except VMError as exc:
        lines.append(("qemu", False, str(exc)))
        return lines
    try:
        kernel = default_kernel()
        lines.append(("kernel", True, f"{kernel} (modules {kernel_release(kernel)})"))
    except VMError as exc:
        lines.append(("kernel", False, str(exc)))
        return lines
    try:
        lines.append(("busybox", True, busybox_path()))
    except VMError as exc:
        lines.append(("busybox", False, str(exc)))
    machines = host.machine_types(qemu)
    lines.append(("machine", True, "microvm" if "microvm" in machines else "q35"))
    if probe_accel:
        from pytest_isolate.vm.accel import choose_accel

        try:
            accel, reason = choose_accel("auto", kernel)
            lines.append(("accel", True, f"{accel}: {reason}"))
        except VMError as exc:
            lines.append(("accel", False, str(exc)))
    return lines
