"""Docker engine access: endpoint, availability, hardened create arguments,
attach streams, leftover reaping. The container backend builds on these."""

from __future__ import annotations

from pytest_isolate.container.attached_stream import AttachedStream, StreamDemultiplexer
from pytest_isolate.container.engine import (
    Engine,
    EngineEndpoint,
    EngineUnavailableError,
    connect_engine,
    engine_available,
    parse_engine_url,
)
from pytest_isolate.container.hardening import BindMount, hardened_create_kwargs
from pytest_isolate.container.reaping import (
    LABEL_BROKER_PID,
    LABEL_HOST,
    LABEL_RUN,
    ReapedContainer,
    reap_leftovers,
    run_labels,
)

__all__ = [
    "LABEL_BROKER_PID",
    "LABEL_HOST",
    "LABEL_RUN",
    "AttachedStream",
    "BindMount",
    "Engine",
    "EngineEndpoint",
    "EngineUnavailableError",
    "ReapedContainer",
    "StreamDemultiplexer",
    "connect_engine",
    "engine_available",
    "hardened_create_kwargs",
    "parse_engine_url",
    "reap_leftovers",
    "run_labels",
]
