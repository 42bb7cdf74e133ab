"""What the VM layer reports about this machine, and how it picks KVM or TCG."""

from __future__ import annotations

import time

from pytest_isolate.vm import choose_accel, vm_available, vm_doctor


def test_vm_is_available_here() -> None:
    available, detail = vm_available()
    assert available, detail
    assert "QEMU emulator version" in detail


def test_doctor_names_qemu_kernel_and_accel_verdict() -> None:
    lines = {name: (ok, detail) for name, ok, detail in vm_doctor()}
    assert all(ok for ok, _ in lines.values()), lines
    assert "QEMU emulator version" in lines["qemu"][1]
    assert "/vmlinuz-" in lines["kernel"][1] or "/vmlinux" in lines["kernel"][1]
    assert lines["accel"][1].split(":")[0] in ("kvm", "tcg")
    print("\n" + "\n".join(f"{name}: {detail}" for name, (_, detail) in lines.items()))


def test_auto_accel_verdict_is_cached_and_explained() -> None:
    first = choose_accel("auto")  # may probe once per host boot
    started = time.monotonic()
    again = choose_accel("auto")
    assert again == first
    assert time.monotonic() - started < 2.0  # a cached file, not a probe (which boots a guest)
    assert again[0] in ("kvm", "tcg") and again[1]


def test_tcg_can_be_forced() -> None:
    assert choose_accel("tcg") == ("tcg", "TCG requested (accel='tcg')")
