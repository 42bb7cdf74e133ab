"""The guest's reseed helper: a 200-byte static program, and the seed it reads.

Guests restored from one snapshot wake up with the same kernel RNG state
and the snapshot's clock. Right after the launch payload arrives, before
anything else runs, the init runs ``/pi/reseed``: it sets the clock from the
host's and credits 64 bytes of host entropy to the kernel (RNDADDENTROPY),
then forces a CRNG reseed (RNDRESEEDCRNG; a plain write to /dev/urandom
mixes but does not reseed). Doing this before the command starts also gives
the command (and every process it forks) its own address-space layout.

Why machine code and not Python: the helper runs before the shares are
mounted, and a Python interpreter starting cold over 9p costs about 0.35 s
per guest under TCG. ``CODE`` is ``reseed.S`` (next to this file) assembled
with GNU as; ``tests/vm/test_vm_snapshot.py`` re-assembles it and checks the
bytes, so the hex below is never the only source.
"""

from __future__ import annotations

import struct

#: ``as --64 reseed.S && objcopy -O binary -j .text``: position independent, no libc.
CODE = bytes.fromhex(
    "4881ec0001000041bd02000000b802000000488d3da100000031f60f0585c00f"
    "888b00000041bd0300000089c731c04889e6ba000100000f0583f858757241bd"
    "04000000b8e300000031ff4889e60f0585c0755c41bd05000000b80200000048"
    "8d3d5d000000be010000000f0585c0783f4189c441bd06000000b81000000044"
    "89e7be03520840488d5424100f0585c0751e41bd07000000b8100000004489e7"
    "be0752000031d20f0585c075034531edb83c0000004489ef0f052f70692f7365"
    "6564002f6465762f7572616e646f6d00"
)

_BASE = 0x400000
_EHDR = 64
_PHDR = 56


def executable(code: bytes = CODE) -> bytes:
    """``code`` as a static x86-64 ELF executable: one read+execute segment."""
    entry = _BASE + _EHDR + _PHDR
    size = _EHDR + _PHDR + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
    header = struct.pack(
        "<16sHHIQQQIHHHHHH", ident, 2, 0x3E, 1, entry, _EHDR, 0, 0, _EHDR, _PHDR, 1, 64, 0, 0
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    return header + segment + code


def seed_file(now_ns: int, entropy: bytes) -> bytes:
    """What ``/pi/seed`` holds: a ``struct timespec`` then a ``struct rand_pool_info``."""
    if len(entropy) != 64:
        raise ValueError("the reseed helper reads exactly 64 bytes of entropy")
    seconds, nanoseconds = divmod(now_ns, 1_000_000_000)
    timespec = struct.pack("<qq", seconds, nanoseconds)
    pool_info = struct.pack("<ii", len(entropy) * 8, len(entropy)) + entropy
    return timespec + pool_info
