"""pytest-timeout: its limit becomes the broker's timeout for an isolated test.

pytest-timeout arms its timer from a ``pytest_runtest_protocol`` wrapper,
around the whole protocol. For an isolated test that protocol runs in the
broker while the test runs elsewhere, so its alarm would fire in the broker
(and end the whole run, or with ``method=thread`` the whole process). Its
``pytest_timeout_set_timer`` hook is ``firstresult`` so that another plugin
can take over the mechanism: for isolated tests this one does, and the broker
kills the target with its own escalation when the limit passes.

With ``func_only`` the timer is armed around the call alone, from a
``pytest_runtest_call`` wrapper that runs in the target: it is left to
pytest-timeout there, as in a plain run, and the broker adds no limit.

An explicit ``isolate(timeout=)``, ``--isolate-timeout`` or ini
``isolate_timeout`` still wins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from pytest_isolate.spec import IsolateSpec

#: pytest-timeout's plugin name (its ``pytest11`` entry point).
PLUGIN_NAME = "timeout"


@dataclass(frozen=True)
class PluginTimeout:
    """pytest-timeout's limit for one test, and where the user set it."""

    seconds: float
    source: str  # "@pytest.mark.timeout", "--timeout", "PYTEST_TIMEOUT", "ini timeout"


_TIMEOUT_KEY = pytest.StashKey[PluginTimeout]()


def timeout_source(item: pytest.Item) -> str:
    """Where pytest-timeout took the item's limit from: marker over option over env over ini."""
    if item.get_closest_marker("timeout") is not None:
        return "@pytest.mark.timeout"
    if item.config.getoption("timeout", None) is not None:
        return "--timeout"
    if os.environ.get("PYTEST_TIMEOUT"):
        return "PYTEST_TIMEOUT"
    return "ini timeout"


def apply_plugin_timeout(item: pytest.Item, spec: IsolateSpec) -> tuple[IsolateSpec, str | None]:
    """The spec with pytest-timeout's limit when isolate set none, and the note for a report."""
    limit = item.stash.get(_TIMEOUT_KEY, None)
    if limit is None or spec.timeout is not None:
        return spec, None
    note = f"the limit is pytest-timeout's {limit.seconds:g} s from {limit.source}"
    return replace(spec, timeout=limit.seconds), note


class TimeoutTakeover:
    """Takes pytest-timeout's timer over for the tests that the given predicate isolates.

    Only in the broker's own process: a forked target inherits this object,
    and there pytest-timeout keeps its ``func_only`` timer around the call.
    """

    def __init__(self, is_isolated: Callable[[pytest.Item], bool]) -> None:
        self._is_isolated = is_isolated
        self._broker_pid = os.getpid()

    def _takes_over(self, item: pytest.Item) -> bool:
        return os.getpid() == self._broker_pid and self._is_isolated(item)

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        if not self._takes_over(item):
            return None
        if not settings.func_only:
            item.stash[_TIMEOUT_KEY] = PluginTimeout(float(settings.timeout), timeout_source(item))
        return True  # no timer in the broker: the target is killed instead

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> bool | None:
        return True if self._takes_over(item) else None
