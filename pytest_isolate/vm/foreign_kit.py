"""What a guest of another architecture boots: Debian's kernel, busybox and userland for it.

An x86-64 guest borrows the host's kernel, modules, busybox and userland.
An arm64 guest can borrow none of them, so ``python -m pytest_isolate vm
fetch --arch arm64`` puts a kit in the cache, once:

- the kernel package (``linux-image-<abi>-arm64``, the one Debian's
  ``linux-image-arm64`` depends on) and ``busybox-static``, downloaded with
  apt from the mirror the machine already uses, with apt's state kept in a
  private directory so the machine's own package lists and architectures
  are left as they were; the kernel's module index is built with the host's
  ``depmod``;
- the userland: the image builder's ``pytest-isolate/debian:bookworm-arm64``,
  exported to a directory (``images.export``), whose ``/usr`` the guest
  mounts read-only over 9p as an x86-64 guest mounts the host's.

A kit is complete when ``kit.json`` names all of it; a fetch builds the
next kit beside the old one and renames it into place.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_isolate.vm.cache import cache_dir
from pytest_isolate.vm.errors import KernelMissing

Progress = Callable[[str], None]

#: The suite whose kernel and userland a foreign guest gets (the image builder's default).
KIT_SUITE = "bookworm"


class KitError(RuntimeError):
    """A kit could not be fetched; the message says which step failed and why."""


@dataclass(frozen=True)
class GuestKit:
    """A complete kit on disk."""

    arch: str
    kernel: str
    release: str
    #: the root under which ``lib/modules/<release>`` lies
    modules_root: str
    busybox: str
    userland: str


def kit_dir(arch: str) -> Path:
    return cache_dir() / f"guest-{arch}"


def fetch_command(arch: str) -> str:
    """The command that fetches the kit of ``arch`` (for messages and the doctor)."""
    return f"python -m pytest_isolate vm fetch --arch {arch}"


def find_kit(arch: str) -> GuestKit | None:
    """The kit of ``arch`` in the cache, or None when there is none or it is incomplete."""
    try:
        facts = json.loads((kit_dir(arch) / "kit.json").read_text())
        kit = GuestKit(**facts)
    except (OSError, ValueError, TypeError):
        return None
    paths = (kit.kernel, kit.busybox, os.path.join(kit.userland, "usr", "bin", "python3"))
    return kit if all(os.path.exists(path) for path in paths) else None


def require_kit(arch: str) -> GuestKit:
    """The kit of ``arch``, or ``KernelMissing`` with the command that fetches it."""
    kit = find_kit(arch)
    if kit is None:
        raise KernelMissing(
            f"no {arch} guest kernel, busybox and userland in the cache ({kit_dir(arch)}); "
            f"fetch them: {fetch_command(arch)}"
        )
    return kit


def fetch_kit(
    arch: str, image: str, progress: Progress = print, mirror: str | None = None
) -> GuestKit:
    """Download, unpack and index the kit of ``arch``; its userland is ``image`` exported."""
    from pytest_isolate.container.engine import connect_engine
    from pytest_isolate.images.apt_sources import machine_debian_mirror
    from pytest_isolate.images.export import ImageExportError, export_rootfs

    mirror = mirror or machine_debian_mirror()
    target = kit_dir(arch)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        debs = staging / "debs"
        debs.mkdir()
        apt = _PrivateApt(staging / "apt", arch, mirror)
        progress(f"apt: {arch} package lists from {mirror}")
        apt.run("update")
        kernel_package = apt.kernel_package()
        progress(f"apt: downloading {kernel_package} and busybox-static ({arch})")
        apt.run("download", kernel_package, "busybox-static", cwd=debs)
        kernel_root = staging / "kernel"
        for deb in sorted(debs.glob("*.deb")):
            _run(
                [
                    "dpkg-deb",
                    "-x",
                    str(deb),
                    str(kernel_root if "linux-image" in deb.name else staging / "busybox-root"),
                ]
            )
        kernels = glob.glob(str(kernel_root / "boot" / "vmlinuz-*"))
        if len(kernels) != 1:
            raise KitError(f"the kernel package holds {len(kernels)} kernels, not one")
        release = os.path.basename(kernels[0])[len("vmlinuz-") :]
        progress(f"depmod {release}")
        _run(["depmod", "-b", str(kernel_root), release])
        busybox = staging / "busybox"
        shutil.copy2(staging / "busybox-root" / "bin" / "busybox", busybox)
        shutil.rmtree(staging / "busybox-root")
        shutil.rmtree(debs)
        shutil.rmtree(staging / "apt")
        progress(f"userland: exporting {image}")
        with connect_engine() as engine:
            try:
                export_rootfs(engine, image, staging / "userland", force=True)
            except ImageExportError as exc:
                raise KitError(str(exc)) from None
        final = GuestKit(
            arch=arch,
            kernel=str(target / "kernel" / "boot" / f"vmlinuz-{release}"),
            release=release,
            modules_root=str(target / "kernel"),
            busybox=str(target / "busybox"),
            userland=str(target / "userland"),
        )
        (staging / "kit.json").write_text(json.dumps(dataclasses.asdict(final), indent=1) + "\n")
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _PrivateApt:
    """apt-get and apt-cache for one foreign architecture, with state of their own."""

    def __init__(self, root: Path, arch: str, mirror: str) -> None:
        for sub in ("lists/partial", "cache/archives/partial", "parts"):
            (root / sub).mkdir(parents=True)
        (root / "status").touch()
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        (root / "sources.list").write_text(
            f"deb [arch={arch} signed-by={keyring}] {mirror} {KIT_SUITE} main\n"
        )
        self.options = [
            "-o", f"APT::Architecture={arch}",
            "-o", f"APT::Architectures::={arch}",
            "-o", f"Dir::State::Lists={root / 'lists'}",
            "-o", f"Dir::State::status={root / 'status'}",
            "-o", f"Dir::Cache={root / 'cache'}",
            "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={root / 'parts'}",
            "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root",
        ]  # fmt: skip
        self.arch = arch

    def run(self, *args: str, cwd: Path | None = None) -> str:
        return _run(["apt-get", "-q", *self.options, *args], cwd=cwd)

    def kernel_package(self) -> str:
        """``linux-image-6.1.0-50-arm64``: what the ``linux-image-ARCH`` meta package names."""
        meta = f"linux-image-{self.arch}"
        text = _run(["apt-cache", *self.options, "depends", meta])
        for line in text.splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "Depends:" and words[1].startswith("linux-image-"):
                return words[1]
        raise KitError(f"{meta} names no kernel package:\n{text[-1000:]}")


def _run(command: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise KitError(
            f"{command[0]} {command[-1]} failed ({done.returncode}):\n" + "\n".join(tail)
        )
    return done.stdout
