"""Hooks pytest-isolate adds to pytest, so other plugins extend it through pluggy.

Built-in backends register through :func:`pytest_isolate_register_backends`
exactly as a third-party backend would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_isolate.backends.base import Backend
    from pytest_isolate.backends.registry import DeferredBackend
    from pytest_isolate.spec import IsolateSpec


def pytest_isolate_register_backends(
    register: Callable[[Backend | DeferredBackend], None],
) -> None:
    """Register backends by calling ``register(backend)`` once for each.

    ``register(DeferredBackend("name", "package.module:Class"))`` names a
    backend whose module is imported only when a test of this run uses it
    (the built-in backends register so).

    A later registration of the same name replaces an earlier one, so a
    conftest can swap a built-in backend for its own.
    """


@pytest.hookspec(firstresult=True)
def pytest_isolate_adjust_spec(item: pytest.Item, spec: IsolateSpec) -> IsolateSpec | None:
    """Return a changed spec for ``item`` (e.g. a longer timeout in CI), or None.

    Called once per item after marker, command line and ini are resolved;
    the first non-None result wins.
    """
