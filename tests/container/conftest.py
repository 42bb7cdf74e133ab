"""Fixtures for engine-layer tests: the real local engine, our images, and a
launcher that creates, attaches and starts a hardened container and always
removes it afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest
from container_helpers import TEST_RUN_ID, Launch, wait_gone

from pytest_isolate.container.attached_stream import AttachedStream
from pytest_isolate.container.engine import Engine, connect_engine
from pytest_isolate.container.hardening import hardened_create_kwargs
from pytest_isolate.container.reaping import LABEL_RUN, run_labels
from pytest_isolate.container.tcp_relay import LoopbackTcpRelay
from pytest_isolate.images.build import build_image
from pytest_isolate.images.recipe import recipe_for


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    with connect_engine() as opened:
        yield opened


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """Our bookworm image, built by our builder if missing (cached after)."""
    return build_image(engine, recipe_for("debian:bookworm"), progress=lambda _m: None).tag


def _our_containers(engine: Engine) -> list[dict[str, Any]]:
    return list(engine.api.containers(all=True, filters={"label": f"{LABEL_RUN}={TEST_RUN_ID}"}))


@pytest.fixture
def launch(engine: Engine, image: str) -> Iterator[Launch]:
    """``launch(code, **hardening) -> (container id, stream)``, started and attached."""
    started: list[tuple[Engine, str, AttachedStream]] = []

    def _launch(
        code: str, *, via: Engine | None = None, **options: Any
    ) -> tuple[str, AttachedStream]:
        target = via or engine
        options.setdefault("labels", run_labels(TEST_RUN_ID))
        kwargs = hardened_create_kwargs(image, ["python3", "-c", code], **options)
        container_id = target.api.create_container(**kwargs)["Id"]
        stream = AttachedStream.attach(target.api, container_id)
        started.append((target, container_id, stream))
        target.api.start(container_id)
        return container_id, stream

    yield _launch
    for target, container_id, stream in started:
        stream.close()
        with contextlib.suppress(docker.errors.APIError):  # gone, or auto-remove is on it
            target.api.remove_container(container_id, force=True)
        assert wait_gone(target, container_id), f"container {container_id[:12]} would not go"


@pytest.fixture(autouse=True)
def no_container_outlives_its_test(engine: Engine) -> Iterator[None]:
    yield
    assert _our_containers(engine) == [], "a test left a container behind"


@pytest.fixture
def remote_engine() -> Iterator[Engine]:
    """The same daemon reached over tcp://127.0.0.1 (remote mode: copy, not bind)."""
    with LoopbackTcpRelay() as relay, connect_engine(relay.url) as opened:
        yield opened
