"""The agent: the code a spawned target (container, VM, foreign-root jail) runs.

Inside the target, ``python -m pytest_isolate.agent`` speaks frames on its
stdin/stdout (``wire.agent_protocol``), collects the project once and forks a
fresh child per test (an in-target fork server). The broker's side of the
conversation is ``supervision.agent_client``.

Everything here runs in the target: it imports only ``target``, ``wire``,
``policy`` and pytest, and must stay importable on Python 3.9+ with nothing
but pytest and this package on the path.
"""
