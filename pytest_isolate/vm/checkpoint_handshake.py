"""The checkpoint handshake: the guest's stage-1 init asks, the host answers.

The guest says ``CHECKPOINT`` on the channel once its modules are loaded and
before it mounts anything of the host; the host may snapshot it right then.
The answer is everything that differs per launch, so that a snapshot taken
there serves any launch of the same shape: the launch script, a minimal
/etc, fresh host entropy and the host's clock (a restored guest would
otherwise share its siblings' RNG state and wake up with the snapshot's
time). The payload is a size line and a cpio archive the init unpacks.
"""

from __future__ import annotations

import os
import time

from pytest_isolate.vm import cpio
from pytest_isolate.vm.initramfs import launch_archive
from pytest_isolate.vm.reseed import seed_file

#: The line the guest's init writes when it waits for its payload.
CHECKPOINT = b"pytest-isolate checkpoint\n"

#: Bytes of host entropy credited to each guest's kernel RNG (256 bits + margin).
SEED_BYTES = 64  # what ``reseed.CODE`` reads


def launch_payload(
    script: str, seed: bytes | None = None, now_ns: int | None = None, etc_source: str = "/etc"
) -> bytes:
    """The answer to ``CHECKPOINT``: ``b"<size>\\n"`` and a cpio archive of that size.

    ``seed`` and ``now_ns`` default to fresh ``os.urandom`` bytes and the
    host's ``time.time_ns()``; they are parameters only so tests can check
    the archive's contents. ``etc_source``: the /etc whose library and
    name-service files the guest gets (a foreign guest's userland has its own).
    """
    seed = os.urandom(SEED_BYTES) if seed is None else seed
    now_ns = time.time_ns() if now_ns is None else now_ns
    extra = [cpio.regular("pi/seed", seed_file(now_ns, seed), 0o600)]
    archive = launch_archive(script, etc_source, extra=extra)
    return str(len(archive)).encode() + b"\n" + archive
