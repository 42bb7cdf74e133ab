"""A running guest: QEMU started with the command's stdio on a socket.

This is the thin imperative shell: it resolves the kernel, initramfs and
acceleration, starts QEMU with a parent-death signal, and owns the two
socketpairs (channel and console) and the QEMU process until ``kill``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable

from pytest_isolate.vm import host
from pytest_isolate.vm.config import VMConfig
from pytest_isolate.vm.console import ConsoleBuffer, without_panic_trace
from pytest_isolate.vm.errors import BootFailed, BootTimeout
from pytest_isolate.vm.init_script import launch_script
from pytest_isolate.vm.initramfs import cached_base, launch_archive
from pytest_isolate.vm.kernel import bootable_kernel, default_kernel, kernel_release
from pytest_isolate.vm.layout import GuestLayout, host_system_dirs, plan_layout, resolve_shares
from pytest_isolate.vm.progress import report
from pytest_isolate.vm.qemu_args import (
    LaunchPlan,
    host_timing,
    kernel_cmdline,
    qemu_argv,
    shares_with_tags,
)

PR_SET_PDEATHSIG = 1


def choose_machine(requested: str, available: frozenset[str]) -> str:
    """microvm (fastest boot) when this QEMU has it, else q35."""
    if requested != "auto":
        return requested
    return "microvm" if "microvm" in available else "q35"


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn for QEMU: SIGKILL when the broker's forking thread dies."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def apply() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the broker died before prctl took effect
            os._exit(70)

    return apply


class Guest:
    """One QEMU process running ``VMConfig.command`` as the guest's PID 1.

    ``channel`` is a connected stream socket: bytes written to it arrive on
    the command's stdin, the command's stdout arrives on it. Boot problems
    surface from ``wait_ready``; ``kill`` always ends QEMU and frees
    everything and may be called any number of times.

    Closing the host end of ``channel`` (even only ``shutdown(SHUT_WR)``)
    makes QEMU drop the connection: the command reads EOF on stdin, and
    nothing it writes afterwards reaches the host. When the command exits
    the guest kernel panics (PID 1 died) and ``-no-reboot`` ends QEMU with
    status 0; the command's own exit status is not carried across.

    QEMU gets ``PR_SET_PDEATHSIG``: it dies with the *thread* that started
    it, so start guests from a thread that lives as long as they do.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        channel: socket.socket,
        console: ConsoleBuffer,
        accel: str,
        accel_reason: str,
        boot_timeout: float,
        started_at: float,
    ) -> None:
        self._process = process
        self.channel = channel
        self._console = console
        self.accel = accel
        self.accel_reason = accel_reason
        self.pid = process.pid
        self.boot_timeout = boot_timeout
        self.started_at = started_at
        self._killed = False
        self._lock = threading.Lock()

    @classmethod
    def start(cls, config: VMConfig, progress: Callable[[str], None] | None = None) -> Guest:
        """Start QEMU for ``config``; returns as soon as QEMU runs."""
        from pytest_isolate.vm.accel import choose_accel

        qemu = host.qemu_binary()
        kernel_path = config.kernel or default_kernel()
        release = kernel_release(kernel_path)
        vmlinux = bootable_kernel(kernel_path, progress)
        base = cached_base(release, progress)
        accel, reason = choose_accel(config.accel, kernel_path, progress)
        machine = choose_machine(config.machine, host.machine_types(qemu))
        report(progress, f"booting ({accel}, {machine})…")
        initrd_fd = _initrd_memfd(base.read_bytes(), _launch_script(config))
        tsc_khz, lpj = host_timing(host.cpuinfo(), host.kernel_hz(release))
        channel_host, channel_qemu = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        console_host, console_qemu = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        layout_shares = _layout(config).shares
        plan = LaunchPlan(
            qemu=qemu,
            accel=accel,
            machine=machine,
            kernel=str(vmlinux),
            initrd=f"/proc/self/fd/{initrd_fd}",
            kernel_cmdline=kernel_cmdline(tsc_khz, lpj),
            memory_mib=config.memory_mib,
            cpus=config.cpus,
            channel_fd=channel_qemu.fileno(),
            console_fd=console_qemu.fileno(),
            shares=shares_with_tags(layout_shares),
            cpu=config.cpu,
        )
        started_at = time.monotonic()
        try:
            process = subprocess.Popen(
                qemu_argv(plan),
                stdin=subprocess.DEVNULL,
                stdout=console_qemu.fileno(),
                stderr=console_qemu.fileno(),
                pass_fds=(initrd_fd, channel_qemu.fileno(), console_qemu.fileno()),
                preexec_fn=_die_with_parent(os.getpid()),
                start_new_session=True,
            )
        except BaseException:
            for sock in (channel_host, console_host):
                sock.close()
            raise
        finally:
            os.close(initrd_fd)
            channel_qemu.close()
            console_qemu.close()
        console = ConsoleBuffer(console_host)
        return cls(process, channel_host, console, accel, reason, config.boot_timeout, started_at)

    def console_tail(self, max_bytes: int = 8192) -> str:
        """The last ``max_bytes`` of the guest console (kernel log, command stderr, QEMU errors)."""
        return self._console.tail(max_bytes)

    def wait_ready(self, timeout: float | None = None) -> float:
        """Block until the command's first byte is readable on the channel.

        Nothing is consumed. Returns seconds since QEMU started. Raises
        ``BootFailed`` if QEMU exits first, ``BootTimeout`` (and kills the
        guest) after ``timeout`` (default: the config's ``boot_timeout``).
        """
        limit = self.boot_timeout if timeout is None else timeout
        deadline = self.started_at + limit
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = self.console_tail()
                self.kill()
                raise BootTimeout(
                    f"the guest did not start its command within {limit:.0f} s "
                    f"(accel {self.accel}); raise boot_timeout, or check the console below",
                    tail,
                )
            readable, _, _ = select.select([self.channel], [], [], min(remaining, 0.5))
            if readable:
                if self.channel.recv(1, socket.MSG_PEEK):
                    return time.monotonic() - self.started_at
                self._raise_boot_failed()
            if self._process.poll() is not None:
                self._raise_boot_failed()

    def _raise_boot_failed(self) -> None:
        code = self._process.wait()
        self._console.wait_closed(1.0)
        tail = without_panic_trace(self.console_tail(65536))[-8192:]
        self.kill()
        raise BootFailed(
            f"the guest ended (QEMU exit status {code}) before its command wrote anything; "
            "the console below usually says why",
            tail,
        )

    def wait(self, timeout: float | None = None) -> int | None:
        """QEMU's exit status, or None if it is still running after ``timeout``."""
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL QEMU, reap it and close both sockets. Idempotent."""
        with self._lock:
            if self._killed:
                return
            self._killed = True
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self.channel.close()
        self._console.close()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def _layout_links(config: VMConfig) -> list[tuple[str, str]]:
    return list(_layout(config).links) + _aliases(config.shares)


def _aliases(paths: tuple[str, ...]) -> list[tuple[str, str]]:
    """A share given through a symlink appears at both its real and its given path."""
    aliases = []
    for path in paths:
        absolute = os.path.abspath(path)
        real = os.path.realpath(path)
        if absolute != real:
            aliases.append((absolute, real))
    return aliases


def _layout(config: VMConfig) -> GuestLayout:
    wanted = host.python_prefixes() + resolve_shares(config.shares)
    return plan_layout(host_system_dirs(), wanted)


def _launch_script(config: VMConfig) -> str:
    shares = shares_with_tags(_layout(config).shares)
    return launch_script(shares, _layout_links(config), config.env, config.cwd, config.command)


def _initrd_memfd(base: bytes, script: str) -> int:
    """An anonymous file holding base + per-launch archive; QEMU reads it via /proc/self/fd."""
    fd = os.memfd_create("pytest-isolate-initrd", 0)  # no CLOEXEC: QEMU inherits it
    try:
        with open(fd, "wb", closefd=False) as handle:
            handle.write(base)
            handle.write(launch_archive(script))
    except BaseException:
        os.close(fd)
        raise
    return fd
