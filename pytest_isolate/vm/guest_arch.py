"""What differs between guests of different CPU architectures: QEMU's binary, machine and console.

An x86-64 guest on this machine shares the host's own userland and may use
KVM. A guest of another architecture (arm64) runs under TCG, boots Debian's
kernel for it, and sees a userland of its own (a Debian root exported from
the image builder's image), fetched once by ``vm.foreign_kit``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_isolate.arches import host_arch


@dataclass(frozen=True)
class GuestArch:
    """How QEMU runs a guest of one architecture."""

    #: Debian's name: ``amd64``, ``arm64``
    debian: str
    #: the QEMU system emulator, and the Debian package that has it
    qemu: str
    qemu_package: str
    #: the QEMU machine; None lets ``launch.choose_machine`` pick (microvm or q35)
    machine: str | None
    #: the CPU a TCG guest emulates (KVM uses the host's)
    tcg_cpu: str
    #: the kernel's name of the first serial port, for ``console=``
    console: str
    #: kernel command line words this architecture needs besides the common ones
    cmdline: tuple[str, ...] = ()


#: The CPU a TCG x86-64 guest emulates: x86-64-v2 (what distributions build for, up to
#: SSE4.2 and POPCNT) with AMD's vendor id. Measured here on 200 trivial tests
#: in one guest: 47 ms per test against 62 ms with ``max`` (AVX and XSAVE
#: state make every context switch dearer) and 89 ms with Intel models (the
#: guest kernel turns on page-table isolation for an Intel CPU without
#: RDCL_NO). TCG emulates no speculation, so nothing is lost by that.
#: A host whose Python needs x86-64-v3 (AVX2) passes ``cpu="max"``.
X86_TCG_CPU = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16"

#: The CPU an arm64 TCG guest emulates: QEMU's ``max`` without pointer
#: authentication and SVE. Measured here on 100 trivial tests in one guest:
#: 61 ms per test, against 160 ms with a Cortex-A57, A72 or A53 (the guest
#: kernel turns on its Spectre and erratum workarounds for a real core's
#: model, as an x86 guest turns on page-table isolation for an Intel model)
#: and 349 ms with plain ``max`` (TCG computes every pointer authentication
#: code, which Debian's userland and kernel use on every call and return).
ARM64_TCG_CPU = "max,pauth=off,sve=off"

GUEST_ARCHES: dict[str, GuestArch] = {
    "amd64": GuestArch(
        "amd64",
        "qemu-system-x86_64",
        "qemu-system-x86",
        None,
        X86_TCG_CPU,
        "ttyS0",
        ("i8042.noaux", "i8042.nokbd", "tsc=reliable"),
    ),
    "arm64": GuestArch(
        "arm64", "qemu-system-aarch64", "qemu-system-arm", "virt", ARM64_TCG_CPU, "ttyAMA0"
    ),
}

#: The machine's own architecture's guests (x86-64 here).
HOST_GUEST = GUEST_ARCHES.get(host_arch().debian, GUEST_ARCHES["amd64"])


def guest_arch(name: str | None) -> GuestArch:
    """The guest architecture ``name`` (None: the machine's own); ValueError names the known."""
    if name is None:
        return HOST_GUEST
    if name not in GUEST_ARCHES:
        raise ValueError(f"no vm guests of architecture {name!r}; known: {', '.join(GUEST_ARCHES)}")
    return GUEST_ARCHES[name]
