"""Fixtures for the VM layer tests: real QEMU, the host's real kernel.

Each boot costs seconds under TCG, so one guest running a small request loop
is shared by every test that only needs to look around inside a guest.
"""

from __future__ import annotations

import sys
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
def booted(host_secret: Path) -> Iterator[tuple[GuestSession, float]]:
    """One guest running the request loop, and its seconds from start to first byte."""
    config = VMConfig(
        command=(sys.executable, "-c", REQUEST_LOOP),
        shares=(REPO,),
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
