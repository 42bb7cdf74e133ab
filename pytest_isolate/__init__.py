"""pytest-isolate: run marked tests inside isolated targets and bring the results back.

``isolate`` is ``pytest.mark.isolate``::

    from pytest_isolate import isolate

    @isolate("seccomp", timeout=5)
    def test_parser_on_hostile_input(): ...

The other names of ``__all__`` are the API for third-party backends (see
docs/writing-a-backend.md); they are imported on first use, so code that only
marks tests, and the agent inside a target, load none of the broker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import pytest

from pytest_isolate._version import __version__

if TYPE_CHECKING:
    from pytest_isolate.backends.base import Availability, Backend
    from pytest_isolate.backends.forked import ChildSetup, ForkedBackend
    from pytest_isolate.backends.registry import DeferredBackend
    from pytest_isolate.backends.target_watch import TargetWatch
    from pytest_isolate.spec import IsolateSpec, SpecError
    from pytest_isolate.supervision.context import BrokerContext
    from pytest_isolate.supervision.result import FailureKind, TargetResult
    from pytest_isolate.target.sequence import Privileges
    from pytest_isolate.wire.frames import FrameDecoder, FrameLimits, ProtocolViolation
    from pytest_isolate.wire.reports import sanitize_report

isolate = pytest.mark.isolate

#: Public name -> the module that defines it.
_API = {
    "Availability": "pytest_isolate.backends.base",
    "Backend": "pytest_isolate.backends.base",
    "BrokerContext": "pytest_isolate.supervision.context",
    "ChildSetup": "pytest_isolate.backends.forked",
    "DeferredBackend": "pytest_isolate.backends.registry",
    "FailureKind": "pytest_isolate.supervision.result",
    "ForkedBackend": "pytest_isolate.backends.forked",
    "FrameDecoder": "pytest_isolate.wire.frames",
    "FrameLimits": "pytest_isolate.wire.frames",
    "IsolateSpec": "pytest_isolate.spec",
    "Privileges": "pytest_isolate.target.sequence",
    "ProtocolViolation": "pytest_isolate.wire.frames",
    "SpecError": "pytest_isolate.spec",
    "TargetResult": "pytest_isolate.supervision.result",
    "TargetWatch": "pytest_isolate.backends.target_watch",
    "sanitize_report": "pytest_isolate.wire.reports",
}

__all__ = [
    "Availability",
    "Backend",
    "BrokerContext",
    "ChildSetup",
    "DeferredBackend",
    "FailureKind",
    "ForkedBackend",
    "FrameDecoder",
    "FrameLimits",
    "IsolateSpec",
    "Privileges",
    "ProtocolViolation",
    "SpecError",
    "TargetResult",
    "TargetWatch",
    "__version__",
    "isolate",
    "sanitize_report",
]


def __getattr__(name: str) -> object:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_isolate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
