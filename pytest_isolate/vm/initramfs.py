"""The guest's initramfs: busybox, the kernel modules it needs, and ``/init``.

The base archive depends only on the kernel (its modules) and busybox, so it
is built once and cached, and it is the whole initrd. Each launch sends a
second small archive with the launch script and a minimal ``/etc`` over the
channel (``handover``), which the guest's init unpacks.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pytest_isolate.vm import cpio, reseed
from pytest_isolate.vm.cache import cache_dir, file_key, write_atomically
from pytest_isolate.vm.errors import KernelMissing, VMError
from pytest_isolate.vm.init_script import INIT
from pytest_isolate.vm.progress import ProgressCallback, timed

#: Drivers the guest needs: virtio transports for microvm (mmio) and q35
#: (pci), the serial channel, 9p shares and overlayfs. Dependencies (virtio,
#: virtio_ring, 9pnet, netfs, fscache) come from modules.dep.
WANTED_MODULES = ("virtio_mmio", "virtio_pci", "virtio_console", "9pnet_virtio", "9p", "overlay")

#: Host /etc files copied into the guest's (otherwise generated) /etc.
HOST_ETC_FILES = ("ld.so.cache", "ld.so.conf", "nsswitch.conf", "localtime")

GUEST_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GUEST_GROUP = "root:x:0:\nnogroup:x:65534:\n"
GUEST_HOSTS = "127.0.0.1 localhost\n::1 localhost\n"

_COMPRESSED_SUFFIXES = (".xz", ".zst", ".gz")


def module_name(path: str) -> str:
    """``kernel/fs/9p/9p.ko.xz`` -> ``9p``; dashes and underscores are the same name."""
    base = os.path.basename(path)
    for suffix in _COMPRESSED_SUFFIXES:
        base = base.removesuffix(suffix)
    return base.removesuffix(".ko").replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep as ``name -> (path, [dependency paths])``."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep:
            table[module_name(path)] = (path.strip(), deps.split())
    return table


def builtin_names(text: str) -> set[str]:
    """Names listed in modules.builtin: compiled into the kernel, nothing to load."""
    return {module_name(line) for line in text.split()}


def load_order(
    wanted: Iterable[str], deps: Mapping[str, tuple[str, list[str]]], builtin: set[str]
) -> list[str]:
    """Module paths to insmod, dependencies first, each once.

    A wanted module that is neither a module nor built in is an error: the
    guest could not mount its shares without it.
    """
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in deps:
            raise KernelMissing(
                f"the guest kernel has no module {name!r} (needed for virtio/9p); "
                "use a distribution kernel such as Debian's linux-image-amd64"
            )
        path, requires = deps[name]
        # modules.dep lists dependencies nearest first; load the farthest first.
        for dep in reversed(requires):
            visit(module_name(dep))
        order.append(path)

    for name in wanted:
        visit(name.replace("-", "_"))
    return order


def _read_module(path: Path) -> bytes:
    """Module bytes, decompressed: busybox insmod only loads plain .ko files."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        done = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True)
        return done.stdout
    return data


def busybox_path() -> str:
    """A statically linked busybox (it runs before any library is mounted)."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox")):
        if candidate and os.path.isfile(candidate):
            return candidate
    raise VMError("busybox is missing; install it (Debian/Ubuntu: apt-get install busybox-static)")


#: The reseed step of a guest of another architecture than the machine's, which
#: the x86-64 helper cannot serve. Such a guest always boots (it is never restored
#: from a snapshot), so its RNG state is its own; the host's entropy is mixed in and
#: its clock comes from the virtual RTC.
FOREIGN_RESEED = (
    b"#!/pi/busybox sh\n/pi/busybox dd if=/pi/seed of=/dev/urandom 2>/dev/null\nexit 0\n"
)


def build_base(release: str, busybox: str, modules_root: str = "/", foreign: bool = False) -> bytes:
    """The cached part: /init, busybox, modules and the mount points.

    ``modules_root``: where the kernel's ``lib/modules/<release>`` lies (a
    guest of another architecture brings its own); ``foreign``: the guest is
    not x86-64, so the reseed helper is a script (``FOREIGN_RESEED``).
    """
    moddir = Path(modules_root) / "lib" / "modules" / release
    if not (moddir / "modules.dep").is_file():
        raise KernelMissing(
            f"no modules for guest kernel {release} in {moddir}; install the kernel package "
            "that provides them, or pass a kernel whose modules are installed"
        )
    deps = parse_modules_dep((moddir / "modules.dep").read_text())
    builtin_file = moddir / "modules.builtin"
    builtin = builtin_names(builtin_file.read_text()) if builtin_file.exists() else set()
    order = load_order(WANTED_MODULES, deps, builtin)
    entries = [cpio.directory(name) for name in ("dev", "proc", "sys", "newroot", "tmp")]
    entries += [
        cpio.char_device("dev/console", 5, 1),
        cpio.char_device("dev/null", 1, 3, 0o666),
        cpio.directory("pi"),
        cpio.directory("pi/modules"),
        cpio.regular("pi/busybox", Path(busybox).read_bytes(), 0o755),
        cpio.regular("init", INIT.encode(), 0o755),
        cpio.regular("pi/reseed", FOREIGN_RESEED if foreign else reseed.executable(), 0o700),
    ]
    names = []
    for path in order:
        name = module_name(path) + ".ko"
        names.append(name)
        entries.append(cpio.regular(f"pi/modules/{name}", _read_module(moddir / path)))
    entries.append(cpio.regular("pi/modules.order", ("\n".join(names) + "\n").encode()))
    return cpio.archive(entries)


def cached_base(
    release: str,
    progress: ProgressCallback = None,
    modules_root: str = "/",
    busybox: str | None = None,
    foreign: bool = False,
) -> Path:
    """Path of the base initramfs for kernel ``release`` and busybox, built on first use."""
    busybox = busybox or busybox_path()
    moddep = Path(modules_root) / "lib" / "modules" / release / "modules.dep"
    # Keyed by what goes in (the module tree and busybox), not by the kernel
    # file: kernels sharing a module tree share one initramfs.
    # INIT and the reseed helper are part of the key too: an edited init must
    # not be served from an old archive.
    key = release + (file_key(moddep) if moddep.exists() else "") + file_key(busybox)
    key += _short(INIT) + _short(reseed.CODE.hex())
    if foreign:
        key += _short(FOREIGN_RESEED.hex())
    target = cache_dir() / f"initramfs-{release}-{_short(key)}.cpio"
    if not target.exists():
        with timed(progress, f"building initramfs for {release}"):
            image = build_base(release, busybox, modules_root, foreign)
            write_atomically(target, image, mode=0o644)
    return target


def _short(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def launch_archive(
    script: str, etc_source: str = "/etc", extra: Sequence[cpio.Entry] = ()
) -> bytes:
    """The per-launch archive: the rendered launch script, a minimal /etc and ``extra``."""
    entries = [
        *extra,
        cpio.regular("pi/launch.sh", script.encode(), 0o755),
        cpio.directory("pi/etc"),
        cpio.regular("pi/etc/passwd", GUEST_PASSWD.encode()),
        cpio.regular("pi/etc/group", GUEST_GROUP.encode()),
        cpio.regular("pi/etc/hosts", GUEST_HOSTS.encode()),
        cpio.regular("pi/etc/hostname", b"pytest-isolate\n"),
    ]
    for name in HOST_ETC_FILES:
        path = os.path.join(etc_source, name)
        if os.path.islink(path):
            entries.append(cpio.symlink(f"pi/etc/{name}", os.readlink(path)))
        elif os.path.isfile(path):
            entries.append(cpio.regular(f"pi/etc/{name}", Path(path).read_bytes()))
    # High inode numbers keep these apart from the base archive's.
    return cpio.archive(entries, first_inode=1_000_000)
