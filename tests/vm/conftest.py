"""Fixtures for the VM layer tests: real QEMU, the host's real kernel.

Each boot costs seconds under TCG, so one guest running a small request loop
is shared by every test that only needs to look around inside a guest.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from vm_helpers import REPO, REQUEST_LOOP, GuestSession

from pytest_isolate.vm import Guest, VMConfig


@pytest.fixture(scope="module")
def host_secret() -> Iterator[Path]:
    """A file under /root on the host, created before the shared guest boots."""
    path = Path("/root") / f".pytest-isolate-secret-{uuid.uuid4().hex}"
    path.write_text("host secret\n")
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def tmp_share() -> Iterator[Path]:
    """A directory under /tmp on the host, shared with the guest (where /tmp is a tmpfs)."""
    path = Path(tempfile.mkdtemp(prefix="pytest-isolate-vm-share-", dir="/tmp"))
    try:
        path.chmod(0o755)
        (path / "shared.txt").write_text("from the host's /tmp\n")
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture(scope="module")
def booted(host_secret: Path, tmp_share: Path) -> Iterator[tuple[GuestSession, float]]:
    """One guest running the request loop, and its seconds from start to first byte."""
    config = VMConfig(
        command=(sys.executable, "-c", REQUEST_LOOP),
        shares=(REPO, str(tmp_share)),
        env=(("PATH", "/usr/bin:/bin"), ("LC_ALL", "C.UTF-8"), ("PI_MARK", "guest-env")),
        cwd=REPO,
        accel="auto",
    )
    started = time.monotonic()
    guest = Guest.start(config)
    try:
        guest.wait_ready()
        session = GuestSession(guest)
        assert session.readline() == b"ready"
        yield session, time.monotonic() - started
    finally:
        guest.kill()


@pytest.fixture
def guest_session(booted: tuple[GuestSession, float]) -> GuestSession:
    return booted[0]
