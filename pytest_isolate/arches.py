"""CPU architectures a target can have, by Debian's names, and whether this machine runs them.

One table says, for each architecture a user may write in ``arch=``, what
Docker and libseccomp call it and which ``qemu-user`` interpreter runs it on
another architecture. Everything that must agree on those names (the image
builder, the container and vm backends, the filter compiler, the doctor)
reads them here.

A foreign architecture runs under ``qemu-user``, which the kernel starts for
each foreign program through a ``binfmt_misc`` registration. Debian's
``qemu-user-static`` registers with the F flag (the interpreter is opened at
registration), so it works inside containers that do not hold it. A 32-bit
x86 userland needs no emulation on an x86-64 kernel.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from pytest_isolate.spec import SpecError

BINFMT_DIR = "/proc/sys/fs/binfmt_misc"


@dataclass(frozen=True)
class Arch:
    """One architecture, as each tool names it."""

    #: Debian's name (``arm64``): what users write, and the image tag's suffix
    debian: str
    #: Docker's platform (``linux/arm64``), given at image load and container create
    docker_platform: str
    #: libseccomp's name (``AARCH64``): ``pyseccomp.Arch`` and the profiles' ``SCMP_ARCH_*``
    seccomp_arch: str
    #: the binfmt_misc entry of Debian's qemu-user-static that runs it elsewhere
    binfmt: str
    #: the Debian suites that have it as a release architecture
    suites: tuple[str, ...] = ("bookworm", "trixie")
    #: the host machines that run it without emulation (a 64-bit kernel runs 32-bit code)
    native_on: tuple[str, ...] = ()

    @property
    def docker_architecture(self) -> str:
        """``arm`` of ``linux/arm/v7``: what an image's configuration says."""
        return self.docker_platform.split("/")[1]

    @property
    def docker_variant(self) -> str | None:
        """``v7`` of ``linux/arm/v7``; None where the platform has none."""
        parts = self.docker_platform.split("/")
        return parts[2] if len(parts) > 2 else None


ARCHES: dict[str, Arch] = {
    arch.debian: arch
    for arch in (
        Arch("amd64", "linux/amd64", "X86_64", "qemu-x86_64", native_on=("x86_64",)),
        Arch("i386", "linux/386", "X86", "qemu-i386", native_on=("x86_64", "i686")),
        Arch("arm64", "linux/arm64", "AARCH64", "qemu-aarch64", native_on=("aarch64",)),
        Arch("armhf", "linux/arm/v7", "ARM", "qemu-arm", native_on=("aarch64", "armv7l")),
        Arch("ppc64el", "linux/ppc64le", "PPC64LE", "qemu-ppc64le", native_on=("ppc64le",)),
        Arch("riscv64", "linux/riscv64", "RISCV64", "qemu-riscv64", ("trixie",), ("riscv64",)),
    )
}

#: How Docker and ``uname`` spell some of them, for a user who writes those.
ALIASES: dict[str, str] = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "386": "i386",
    "i686": "i386",
    "armv7l": "armhf",
    "ppc64le": "ppc64el",
}


class UnknownArchError(ValueError):
    """``arch=`` names no architecture in the table."""


def arch_named(name: str) -> Arch:
    """The architecture ``name`` (Debian's, Docker's or uname's spelling), or a clear error."""
    key = ALIASES.get(name, name)
    if key not in ARCHES:
        raise UnknownArchError(f"unknown architecture {name!r}; known: {', '.join(ARCHES)}")
    return ARCHES[key]


def host_arch() -> Arch:
    """This machine's own architecture."""
    machine = platform.machine()
    return arch_named(machine) if ALIASES.get(machine, machine) in ARCHES else ARCHES["amd64"]


def foreign_arch(value: object, where: str) -> Arch | None:
    """An ``arch=`` keyword: None when absent or the machine's own; SpecError when unknown."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(f"{where}: arch={value!r} must be an architecture's name, e.g. 'arm64'")
    try:
        arch = arch_named(value)
    except UnknownArchError as exc:
        raise SpecError(f"{where}: {exc}") from None
    return None if arch == host_arch() else arch


def needs_emulation(arch: Arch) -> bool:
    """Whether this machine runs ``arch`` only through qemu-user."""
    return platform.machine() not in arch.native_on


def kernel_arches() -> list[Arch]:
    """What this machine's kernel runs natively: its own and its 32-bit companion."""
    return [arch for arch in ARCHES.values() if not needs_emulation(arch)]


def binfmt_state(arch: Arch) -> str | None:
    """None when ``arch`` runs here; otherwise what is missing, in words.

    Looks at the binfmt_misc registration that qemu-user-static makes: the
    file system must be mounted, the entry present and enabled, and its
    interpreter opened at registration (the F flag), or a container would
    look for the interpreter in its own root.
    """
    if not needs_emulation(arch):
        return None
    if not os.path.exists(os.path.join(BINFMT_DIR, "status")):
        return f"binfmt_misc is not mounted ({BINFMT_DIR}), so {arch.debian} programs cannot run"
    entry = os.path.join(BINFMT_DIR, arch.binfmt)
    try:
        with open(entry) as f:
            text = f.read()
    except OSError:
        return f"no binfmt_misc registration {arch.binfmt} (qemu-user-static) for {arch.debian}"
    lines = text.splitlines()
    if "enabled" not in lines:
        return f"the binfmt_misc registration {arch.binfmt} is disabled"
    flags = next((line.split(":", 1)[1] for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        return (
            f"the binfmt_misc registration {arch.binfmt} lacks the F flag, so containers "
            "cannot find its interpreter"
        )
    return None


def binfmt_fix(arch: Arch) -> str:
    """The commands that make ``arch`` runnable here (Debian's packages)."""
    return (
        "apt-get install qemu-user-static binfmt-support; "
        f"mount -t binfmt_misc binfmt_misc {BINFMT_DIR} (once per boot); "
        f"update-binfmts --enable {arch.binfmt}"
    )
