"""Everything a launch needs, resolved before QEMU starts.

Kept apart from ``guest`` (which runs QEMU) so that a boot and a restore
start from the same ``Launch``: a restore must repeat the argv of the boot
that was saved, and the snapshot key is computed from this plan.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_isolate.vm import host
from pytest_isolate.vm.guest_arch import guest_arch
from pytest_isolate.vm.guest_config import VMConfig
from pytest_isolate.vm.init_script import launch_script
from pytest_isolate.vm.initramfs import cached_base
from pytest_isolate.vm.kernel import bootable_kernel, default_kernel, kernel_release
from pytest_isolate.vm.layout import (
    SYSTEM_DIRS,
    GuestLayout,
    host_path,
    host_system_dirs,
    plan_layout,
    resolve_shares,
)
from pytest_isolate.vm.progress import report
from pytest_isolate.vm.qemu_args import (
    LaunchPlan,
    host_timing,
    kernel_cmdline,
    shares_with_tags,
    snapshot_shape,
)
from pytest_isolate.vm.snapshot import snapshot_key, snapshot_path


@dataclass(frozen=True)
class Launch:
    """A resolved launch: the plan (descriptors still -1) and the guest's launch script."""

    plan: LaunchPlan
    script: str
    accel_reason: str
    #: the /etc whose library and name-service files the guest gets
    etc_source: str = "/etc"

    def snapshot_file(self) -> str:
        """Where a snapshot of this launch's shape lives (whether or not it exists)."""
        files = [self.plan.qemu, self.plan.kernel, self.plan.initrd]
        facts = [host.qemu_version(self.plan.qemu), host.cpu_signature(host.cpuinfo())]
        key = snapshot_key(snapshot_shape(self.plan), files, facts)
        return str(snapshot_path(key))


def choose_machine(requested: str, available: frozenset[str]) -> str:
    """microvm (fastest boot) when this QEMU has it, else q35."""
    if requested != "auto":
        return requested
    return "microvm" if "microvm" in available else "q35"


def resolve(config: VMConfig, progress: Callable[[str], None] | None = None) -> Launch:
    """Unpack/build what is cached (kernel, initramfs), pick accel and machine, plan."""
    from pytest_isolate.vm.accel import choose_accel

    arch = guest_arch(config.arch)
    foreign = config.arch is not None
    qemu = host.qemu_binary(arch)
    kernel_path = config.kernel or default_kernel()
    release = kernel_release(kernel_path)
    # a foreign kernel (an arm64 Image) is booted as it is: only a bzImage hides its ELF
    vmlinux = Path(kernel_path) if foreign else bootable_kernel(kernel_path, progress)
    base = cached_base(release, progress, config.modules_root, config.busybox, foreign)
    if foreign:
        accel, reason = "tcg", f"{arch.debian} guests are emulated (TCG) on this machine"
    else:
        accel, reason = choose_accel(config.accel, kernel_path, progress)
    machine = arch.machine or choose_machine(config.machine, host.machine_types(qemu))
    report(progress, f"booting ({accel}, {machine})…")
    tsc_khz, lpj = host_timing(host.cpuinfo(), host.kernel_hz(release))
    layout = _layout(config)
    userland = config.userland or "/"
    tags = shares_with_tags(layout.shares)  # (tag, the guest's path)
    plan = LaunchPlan(
        qemu=qemu,
        accel=accel,
        machine=machine,
        kernel=str(vmlinux),
        initrd=str(base),
        kernel_cmdline=kernel_cmdline(tsc_khz, lpj, arch=arch),
        memory_mib=config.memory_mib,
        cpus=config.cpus,
        channel_fd=-1,
        console_fd=-1,
        shares=[(tag, _host_of(path, config)) for tag, path in tags],
        cpu=config.cpu,
        arch=arch,
    )
    links = list(layout.links) + _aliases(config.shares)
    script = launch_script(tags, links, config.env, config.cwd, config.command)
    return Launch(plan, script, reason, os.path.join(userland, "etc"))


def _host_of(guest_path: str, config: VMConfig) -> str:
    """A share's place on the host: a system directory of a foreign userland is inside it."""
    if config.userland and guest_path in SYSTEM_DIRS:
        return host_path(guest_path, config.userland)
    return guest_path


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
    """The host's system directories and Python, or a foreign userland's system directories."""
    if config.userland:
        system = host_system_dirs(userland=config.userland)
        return plan_layout(system, resolve_shares(config.shares))
    wanted = host.python_prefixes() + resolve_shares(config.shares)
    return plan_layout(host_system_dirs(), wanted)
