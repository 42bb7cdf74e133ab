"""Other pytest plugins, each through its own public hooks and data, one module each.

The session registers a module's plugin object only when that plugin is
installed and active, so an absent plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest


def register_integrations(
    config: pytest.Config, is_isolated: Callable[[pytest.Item], bool]
) -> None:
    """Register the integration of each installed plugin that needs one."""
    manager = config.pluginmanager
    if manager.has_plugin("timeout"):
        from pytest_isolate.integrations.timeout import TimeoutTakeover

        manager.register(TimeoutTakeover(is_isolated), "isolate-timeout-takeover")
