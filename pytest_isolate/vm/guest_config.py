"""What a guest is: the immutable description a backend hands to ``Guest.start``."""

from __future__ import annotations

from dataclasses import dataclass

#: Accepted values of ``VMConfig.accel``.
ACCELS = ("auto", "kvm", "tcg")
#: Accepted values of ``VMConfig.machine``.
MACHINES = ("auto", "microvm", "q35")


@dataclass(frozen=True)
class VMConfig:
    """A guest to boot: its command, what it sees of the host and its size.

    ``command`` runs as the guest's PID 1 with stdin/stdout on the channel and
    stderr on the console. ``shares`` are extra host directories (the project)
    exposed read-only at the same path; the system directories and the running
    Python's prefix are always added. ``env`` is the command's whole
    environment: nothing of the broker's environment reaches the guest.
    """

    command: tuple[str, ...]
    shares: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    kernel: str | None = None
    accel: str = "auto"
    memory_mib: int = 1024
    cpus: int = 1
    boot_timeout: float = 60.0
    machine: str = "auto"
    #: QEMU's ``-cpu`` model; None picks one per accelerator (``qemu_args.cpu_model``)
    cpu: str | None = None
    #: Debian's name of a guest architecture other than the machine's (``arm64``); such a
    #: guest runs under TCG on its architecture's machine (``accel`` and ``machine`` do not
    #: apply), on ``userland`` with its own kernel, modules and busybox
    arch: str | None = None
    #: a directory holding the guest's own userland, shared in place of the host's system
    #: directories (and its /etc files used for the guest's); None: the host's
    userland: str | None = None
    #: the root under which ``lib/modules/<release>`` of the kernel lies (default: /)
    modules_root: str = "/"
    #: a static busybox of the guest's architecture (default: the host's)
    busybox: str | None = None

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("VMConfig.command must name a program to run in the guest")
        if self.accel not in ACCELS:
            raise ValueError(f"VMConfig.accel must be one of {ACCELS}, not {self.accel!r}")
        if self.machine not in MACHINES:
            raise ValueError(f"VMConfig.machine must be one of {MACHINES}, not {self.machine!r}")
        if self.memory_mib < 64:
            raise ValueError("VMConfig.memory_mib must be at least 64")
        if self.cpus < 1:
            raise ValueError("VMConfig.cpus must be at least 1")
        if "=" in self.command[0]:
            raise ValueError(
                "VMConfig.command[0] must not contain '=' (env would take it as a variable)"
            )
        if not self.cwd.startswith("/"):
            raise ValueError("VMConfig.cwd must be an absolute path")
        for path in self.shares:
            if not path.startswith("/"):
                raise ValueError(f"VMConfig.shares entries must be absolute paths: {path!r}")
