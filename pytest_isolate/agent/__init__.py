"""The agent: the code a spawned target (container, VM) runs, and the broker's client of it.

Inside the target, ``python -m pytest_isolate.agent`` speaks frames on its
stdin/stdout, collects the project once and forks a fresh child per test
(an in-target fork server). On the broker, :class:`AgentClient` drives it
over any byte stream and turns what it says into a ``TargetResult``.

Only ``protocol`` and ``client`` are imported by the broker; ``server``,
``worker`` and ``fork_server`` run in the target and must stay importable on
Python 3.9+ with nothing but pytest and this package on the path.
"""

from __future__ import annotations

__all__ = ["AgentClient", "AgentDead"]


def __getattr__(name: str) -> object:
    # Lazy: the target imports this package too and needs none of the client.
    if name in __all__:
        from pytest_isolate.agent import client

        return getattr(client, name)
    raise AttributeError(name)
