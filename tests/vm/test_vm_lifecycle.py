"""A guest's life: boot time, power-off with its command, kill, broker death, boot errors."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vm_helpers import REPO, qemu_alive, wait_gone

from pytest_isolate.vm import BootFailed, BootTimeout, Guest, KernelMissing, VMConfig
from pytest_isolate.vm.kernel import default_kernel

BUSYBOX = "/pi/busybox"  # the initramfs's busybox, copied onto the guest's root


def read_all(guest: Guest, timeout: float = 30) -> bytes:
    guest.channel.settimeout(timeout)
    data = b""
    while chunk := guest.channel.recv(65536):
        data += chunk
    return data


def test_trivial_command_answers_within_seconds() -> None:
    messages: list[str] = []
    with Guest.start(VMConfig(command=(BUSYBOX, "echo", "hi")), progress=messages.append) as guest:
        seconds = guest.wait_ready()
        print(f"\nboot to first byte of a trivial command ({guest.accel}): {seconds:.2f} s")
        assert read_all(guest) == b"hi\n"
    assert any(message.startswith("booting (") for message in messages)
    assert seconds < 10


def test_guest_powers_off_when_its_command_exits() -> None:
    """Closing the host end gives the command EOF on stdin; it exits, and so does QEMU.

    QEMU drops the whole connection on EOF, so nothing can be read after a
    ``shutdown(SHUT_WR)``: the command's last words must come before it.
    """
    config = VMConfig(command=(BUSYBOX, "sh", "-c", f"echo ready; exec {BUSYBOX} cat"))
    with Guest.start(config) as guest:
        guest.wait_ready()
        guest.channel.settimeout(30)
        assert guest.channel.recv(100) == b"ready\n"
        guest.channel.sendall(b"through the guest\n")
        assert guest.channel.recv(100) == b"through the guest\n"
        guest.channel.shutdown(socket.SHUT_WR)
        assert guest.wait(timeout=20) == 0
        assert not qemu_alive(guest.pid)


def test_kill_leaves_no_qemu_process() -> None:
    guest = Guest.start(VMConfig(command=(BUSYBOX, "sleep", "60")))
    assert qemu_alive(guest.pid)
    guest.kill()
    assert not qemu_alive(guest.pid)
    guest.kill()  # idempotent
    assert guest.channel.fileno() == -1


BROKER = """
import sys, time
sys.path.insert(0, {repo!r})
from pytest_isolate.vm import Guest, VMConfig
guest = Guest.start(VMConfig(command=("/pi/busybox", "sleep", "60"), accel="tcg"))
print(guest.pid, flush=True)
time.sleep(60)
"""


def test_qemu_dies_with_a_sigkilled_broker() -> None:
    broker = subprocess.Popen(
        [sys.executable, "-c", BROKER.format(repo=REPO)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert broker.stdout is not None
        qemu_pid = int(broker.stdout.readline())
        assert qemu_alive(qemu_pid)
    finally:
        broker.send_signal(signal.SIGKILL)
        broker.wait()
    assert wait_gone(qemu_pid, timeout=10), f"QEMU {qemu_pid} outlived its broker"


def test_a_file_that_is_not_a_kernel_fails_to_boot_with_qemus_reason(tmp_path: Path) -> None:
    # Named as the installed kernel (its release finds the module tree the
    # initramfs needs), but /bin/true: an ELF with no PVH note, which QEMU refuses.
    kernel = tmp_path / Path(default_kernel()).name
    shutil.copy("/bin/true", kernel)
    with pytest.raises(BootFailed) as failure:
        Guest.start(
            VMConfig(command=(BUSYBOX, "true"), kernel=str(kernel), accel="tcg")
        ).wait_ready()
    assert "PVH" in failure.value.console_tail
    assert "PVH" in str(failure.value)


def test_a_command_that_cannot_run_fails_the_boot_with_the_console_tail() -> None:
    guest = Guest.start(VMConfig(command=("/no/such/program",)))
    with pytest.raises(BootFailed) as failure:
        guest.wait_ready()
    assert "/no/such/program" in failure.value.console_tail
    assert "Kernel panic" in failure.value.console_tail
    assert not qemu_alive(guest.pid)


def test_garbage_kernel_file_is_refused_before_boot(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz-garbage"
    kernel.write_bytes(os.urandom(4096))
    with pytest.raises(KernelMissing, match="not a Linux kernel"):
        Guest.start(VMConfig(command=(BUSYBOX, "true"), kernel=str(kernel)))


def test_missing_kernel_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(KernelMissing, match="does not exist"):
        Guest.start(VMConfig(command=(BUSYBOX, "true"), kernel=str(tmp_path / "vmlinuz-none")))


def test_boot_timeout_kills_the_guest() -> None:
    guest = Guest.start(VMConfig(command=(BUSYBOX, "sleep", "60"), boot_timeout=1.0))
    started = time.monotonic()
    with pytest.raises(BootTimeout, match="within 1 s"):
        guest.wait_ready()
    assert time.monotonic() - started < 5
    assert not qemu_alive(guest.pid)


def test_q35_machine_boots_too() -> None:
    with Guest.start(VMConfig(command=(BUSYBOX, "echo", "q35"), machine="q35")) as guest:
        seconds = guest.wait_ready()
        print(f"\nboot to first byte on q35 ({guest.accel}): {seconds:.2f} s")
        assert read_all(guest) == b"q35\n"


def test_start_and_kill_leave_no_descriptor_behind() -> None:
    before = set(os.listdir("/proc/self/fd"))
    Guest.start(VMConfig(command=(BUSYBOX, "sleep", "60"))).kill()
    assert set(os.listdir("/proc/self/fd")) <= before
