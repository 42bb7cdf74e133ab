"""QEMU's command line and the guest kernel's, as pure functions of a plan.

Kept apart from the code that starts QEMU so that every hardening flag is
visible in one place and checked by table tests: no network device, no
display, no human monitor (QMP only on the broker's socket, for snapshots),
QEMU's own seccomp sandbox, no reboot, shares read-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pytest_isolate.vm.guest_arch import HOST_GUEST, X86_TCG_CPU, GuestArch

#: QEMU's seccomp sandbox: also deny obsolete syscalls, privilege changes,
#: spawning processes and scheduler/resource control.
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

#: The CPU an x86-64 TCG guest emulates (why: ``guest_arch.X86_TCG_CPU``).
TCG_CPU = X86_TCG_CPU

#: Name of the virtio-serial port carrying the command's stdin/stdout.
CHANNEL_PORT_NAME = "pytest_isolate.channel"


@dataclass(frozen=True)
class LaunchPlan:
    """Everything QEMU's argv depends on, already resolved."""

    qemu: str
    accel: str  # "kvm" or "tcg"
    machine: str  # "microvm" or "q35"; "virt" for an arm64 guest
    kernel: str
    initrd: str
    kernel_cmdline: str
    memory_mib: int
    cpus: int
    channel_fd: int
    console_fd: int
    shares: Sequence[tuple[str, str]]  # (mount tag, host path)
    cpu: str | None = None  # None: the host's CPU under KVM, ``TCG_CPU`` under TCG
    qmp_fd: int | None = None  # a QMP monitor on this socket (snapshots only)
    incoming_fd: int | None = None  # restore the guest from the migration stream on this fd
    arch: GuestArch = field(default=HOST_GUEST)


def cpu_model(accel: str, requested: str | None, arch: GuestArch = HOST_GUEST) -> str:
    """The ``-cpu`` value: the user's, else the host's under KVM and the arch's own under TCG."""
    if requested:
        return requested
    return "host" if accel == "kvm" else arch.tcg_cpu


def kernel_cmdline(
    tsc_khz: int | None, lpj: int | None, quiet: bool = True, arch: GuestArch = HOST_GUEST
) -> str:
    """The guest kernel's command line.

    ``panic=-1`` turns "init exited" into an immediate reset, which
    ``-no-reboot`` turns into QEMU exiting: the guest ends with its command.
    Under TCG, microvm hangs at "Marking TSC unstable" without the host's TSC
    frequency and loops-per-jiffy, so they are passed when known.
    """
    words = [f"console={arch.console}", "panic=-1", "rdinit=/init", "reboot=t", *arch.cmdline]
    if quiet:
        words.append("quiet")
    if tsc_khz and arch == HOST_GUEST:
        words.append(f"tsc_early_khz={tsc_khz}")
    if lpj and arch == HOST_GUEST:
        words.append(f"lpj={lpj}")
    return " ".join(words)


def qemu_argv(plan: LaunchPlan) -> list[str]:
    """The full argv for ``qemu-system-x86_64`` (or the guest architecture's emulator)."""
    mmio = plan.machine in ("microvm", "virt")  # virtio over MMIO, not PCI
    machine = {
        "microvm": "microvm,x-option-roms=off,isa-serial=on,rtc=on",
        "q35": "q35,vmport=off",
    }.get(plan.machine, plan.machine)
    argv = [
        plan.qemu,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-nic",
        "none",
        "-no-reboot",
        "-sandbox",
        SANDBOX,
        "-machine",
        machine,
        "-accel",
        plan.accel,
        "-cpu",
        cpu_model(plan.accel, plan.cpu, plan.arch),
        "-m",
        str(plan.memory_mib),
        "-smp",
        str(plan.cpus),
        "-kernel",
        plan.kernel,
        "-initrd",
        plan.initrd,
        "-append",
        plan.kernel_cmdline,
        "-chardev",
        f"socket,id=console,fd={plan.console_fd}",
        "-serial",
        "chardev:console",
        "-chardev",
        f"socket,id=channel,fd={plan.channel_fd}",
        "-device",
        "virtio-serial-device" if mmio else "virtio-serial-pci",
        "-device",
        f"virtserialport,chardev=channel,name={CHANNEL_PORT_NAME}",
    ]
    if plan.qmp_fd is not None:
        # The human monitor stays off (-monitor none); this one is the broker's alone.
        argv += ["-chardev", f"socket,id=qmp,fd={plan.qmp_fd}", "-mon", "chardev=qmp,mode=control"]
    if plan.incoming_fd is not None:
        argv += ["-incoming", f"fd:{plan.incoming_fd}"]
    device = "virtio-9p-device" if mmio else "virtio-9p-pci"
    for index, (tag, path) in enumerate(plan.shares):
        argv += [
            "-fsdev",
            f"local,id=fs{index},path={_escape(path)},security_model=none,readonly=on,"
            "multidevs=remap",
            "-device",
            f"{device},fsdev=fs{index},mount_tag={tag}",
        ]
    return argv


def snapshot_shape(plan: LaunchPlan) -> list[str]:
    """The argv as far as a saved guest depends on it: what a restore must repeat.

    Descriptor numbers and the shared paths vary per launch and are not part
    of the guest's state before its shares are mounted; the number of shares
    (9p devices) is, as is everything else on the command line. The host's
    TSC frequency and loops-per-jiffy are left out too: "cpu MHz" follows
    frequency scaling on many hosts, and a restored kernel has long used
    the values it booted with (the host CPU is in the key instead).
    """
    volatile = ("tsc_early_khz=", "lpj=")
    neutral = replace(
        plan,
        kernel_cmdline=" ".join(
            word for word in plan.kernel_cmdline.split() if not word.startswith(volatile)
        ),
        channel_fd=-1,
        console_fd=-1,
        qmp_fd=None,
        incoming_fd=None,
        shares=[(tag, "") for tag, _path in plan.shares],
    )
    return qemu_argv(neutral)


def _escape(value: str) -> str:
    """QEMU option values escape a comma by doubling it."""
    return value.replace(",", ",,")


def host_timing(cpuinfo: str, hz: int) -> tuple[int | None, int | None]:
    """(tsc_khz, lpj) from /proc/cpuinfo text; (None, None) when it has no numbers."""
    mhz = bogomips = None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        try:
            if key == "cpu MHz" and mhz is None:
                mhz = float(value)
            elif key == "bogomips" and bogomips is None:
                bogomips = float(value)
        except ValueError:
            continue
    tsc_khz = round(mhz * 1000) if mhz else None
    lpj = round(bogomips * 500000 / hz) if bogomips else None
    return tsc_khz, lpj


def shares_with_tags(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Give each shared path a short 9p mount tag (QEMU limits tags to 31 bytes)."""
    return [(f"pi{index}", path) for index, path in enumerate(paths)]
