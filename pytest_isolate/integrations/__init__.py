"""Other pytest plugins, each through its own public hooks and data, one module each.

The session registers a module's plugin object only when that plugin is
installed, so an absent plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pytest

from pytest_isolate.spec import IsolateSpec


class IsolatingSession(Protocol):
    """What an integration needs of the session that isolates tests (``broker.session``)."""

    #: Plugins that drive some items' protocol themselves; the session steps aside for those.
    protocol_drivers: list[Callable[[pytest.Item], bool]]

    def spec_of(self, item: pytest.Item) -> IsolateSpec | None: ...

    def is_isolated(self, item: pytest.Item) -> bool: ...

    def run_for_relay(self, item: pytest.Item, spec: IsolateSpec) -> list[pytest.TestReport]: ...


def register_integrations(config: pytest.Config, session: IsolatingSession) -> None:
    """Register the integration of each installed plugin that needs one."""
    manager = config.pluginmanager
    if manager.has_plugin("timeout"):
        from pytest_isolate.integrations.timeout import TimeoutTakeover

        manager.register(TimeoutTakeover(session.is_isolated), "isolate-timeout-takeover")
    rerunfailures = manager.get_plugin("rerunfailures")
    if rerunfailures is not None and hasattr(rerunfailures, "get_reruns_count"):
        from pytest_isolate.integrations.rerunfailures import PhaseRelay, reruns_for

        session.protocol_drivers.append(reruns_for(rerunfailures))
        manager.register(PhaseRelay(session.spec_of, session.run_for_relay), "isolate-phase-relay")
