"""The guest kernel: find one, and unpack it once so QEMU boots it directly.

A distribution ``vmlinuz`` is a bzImage whose real kernel is compressed
inside it. Under TCG the guest spends about 4 s decompressing it on every
boot, so we take the payload out on the host once (about 0.6 s for xz),
keep the resulting ELF ``vmlinux`` in the cache and let QEMU load that: the
ELF carries a PVH entry note, which both microvm and q35 boot from.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

from pytest_isolate.vm.cache import cache_dir, file_key, write_atomically
from pytest_isolate.vm.errors import KernelMissing
from pytest_isolate.vm.progress import ProgressCallback, timed

_ELF_MAGIC = b"\x7fELF"
#: Magic numbers of the payload formats a bzImage may carry.
_PAYLOAD_MAGICS = {
    b"\xfd7zXZ\x00": "xz",
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bzip2",
    b"\x5d\x00\x00": "lzma",
    b"\x02\x21\x4c\x18": "lz4",
}


def default_kernel() -> str:
    """The newest ``/boot/vmlinuz-*`` by kernel version, or raise ``KernelMissing``."""
    candidates = glob.glob("/boot/vmlinuz-*")
    if not candidates:
        raise KernelMissing(
            "no guest kernel: /boot/vmlinuz-* is empty. Install one "
            "(Debian/Ubuntu: apt-get install linux-image-amd64) or pass kernel=PATH"
        )
    return max(candidates, key=lambda path: _version_key(kernel_release(path)))


def _version_key(release: str) -> tuple[tuple[int, str], ...]:
    return tuple(
        (int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"[.\-+~]", release)
    )


def kernel_release(kernel_path: str) -> str:
    """``6.1.0-56-amd64`` for ``/boot/vmlinuz-6.1.0-56-amd64``: names its module tree."""
    name = os.path.basename(kernel_path)
    for prefix in ("vmlinuz-", "vmlinux-", "bzImage-"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def find_payload(image: bytes) -> tuple[int, int, str]:
    """Locate the compressed kernel inside a bzImage: (offset, length, format).

    Boot protocol 2.08 and later record the payload's place in the setup
    header; an image that is already an ELF needs no unpacking (format "elf").
    """
    if image.startswith(_ELF_MAGIC):
        return 0, len(image), "elf"
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        raise KernelMissing("not a Linux kernel image (no bzImage header, not an ELF)")
    (protocol,) = struct.unpack_from("<H", image, 0x206)
    if protocol < 0x208:
        raise KernelMissing(f"bzImage boot protocol {protocol:#x} is too old (need 2.08+)")
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = image[start : start + 8]
    for magic, fmt in _PAYLOAD_MAGICS.items():
        if payload.startswith(magic):
            return start, length, fmt
    raise KernelMissing(f"unknown kernel payload compression (magic {payload[:6].hex()})")


def decompress_payload(data: bytes, fmt: str) -> bytes:
    """Decompress one payload; trailing bytes after the stream are ignored."""
    if fmt == "elf":
        return data
    if fmt in ("xz", "lzma"):
        decoder = lzma.LZMADecompressor(lzma.FORMAT_XZ if fmt == "xz" else lzma.FORMAT_ALONE)
        return decoder.decompress(data)
    if fmt == "gzip":
        return gzip.decompress(data)
    if fmt == "bzip2":
        return bz2.BZ2Decompressor().decompress(data)
    tool = {"zstd": ["zstd", "-dc"], "lz4": ["lz4", "-dc"]}[fmt]
    if shutil.which(tool[0]) is None:
        raise KernelMissing(f"the kernel is {fmt}-compressed; install {tool[0]} to unpack it")
    # The kernel's size trailer follows the stream; both tools stop at the frame end.
    done = subprocess.run(tool, input=data, capture_output=True, check=False)
    if not done.stdout:
        raise KernelMissing(f"{tool[0]} could not unpack the kernel: {done.stderr.decode()[:200]}")
    return done.stdout


def unpack_kernel(image: bytes) -> bytes:
    """The uncompressed ELF vmlinux inside ``image``."""
    offset, length, fmt = find_payload(image)
    vmlinux = decompress_payload(image[offset : offset + length], fmt)
    if not vmlinux.startswith(_ELF_MAGIC):
        raise KernelMissing(f"the {fmt} payload of the kernel is not an ELF vmlinux")
    return vmlinux


def bootable_kernel(kernel_path: str, progress: ProgressCallback = None) -> Path:
    """The cached uncompressed kernel for ``kernel_path``, built on first use."""
    if not os.path.isfile(kernel_path):
        raise KernelMissing(f"guest kernel {kernel_path!r} does not exist; pass kernel=PATH")
    with open(kernel_path, "rb") as probe:
        if probe.read(4) == _ELF_MAGIC:
            return Path(kernel_path)  # already uncompressed: nothing to cache
    target = cache_dir() / f"vmlinux-{kernel_release(kernel_path)}-{file_key(kernel_path)}"
    if target.exists():
        return target
    with timed(progress, f"decompressing kernel {kernel_path}"):
        try:
            with open(kernel_path, "rb") as handle:
                image = handle.read()
        except OSError as exc:
            raise KernelMissing(f"cannot read guest kernel {kernel_path!r}: {exc}") from exc
        write_atomically(target, unpack_kernel(image), mode=0o644)
    return target
