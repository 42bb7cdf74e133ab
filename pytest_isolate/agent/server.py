"""``python -m pytest_isolate.agent``: the agent's main, run inside the target.

Order of things, and why:

1. Take the real stdin/stdout for the broker link (moved to private fds),
   point fd 0 at /dev/null and fd 1 at stderr: nothing but frames may ever
   reach the broker's stream, and pytest's fd capture must save harmless fds
   (a test's child keeps those).
2. Refuse ptrace and /proc/<pid>/mem from the tests' children (same uid) by
   being non-dumpable; ignore nothing, handle no signal: as PID 1, a signal
   without a handler cannot be delivered from inside the namespace.
3. Say ``hello``, wait for ``start``, run pytest in-process with the worker
   plugin, which collects and then serves ``run`` requests until ``shutdown``
   or until the broker's end closes (the lifeline).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import List

from pytest_isolate.agent.channel import AgentChannel, BrokerGone
from pytest_isolate.agent.sweep import become_reaper, kill_leftovers
from pytest_isolate.target import steps
from pytest_isolate.wire.agent_protocol import Hello, StartRequest, parse_broker_message

#: Broker link fds: high enough to stay clear of what pytest and tests open.
LINK_IN_FD = 1021
LINK_OUT_FD = 1022


def take_stdio() -> AgentChannel:
    """Move the broker link off fds 0 and 1 (step 1 above)."""
    in_fd = os.dup2(0, LINK_IN_FD, inheritable=False)
    out_fd = os.dup2(1, LINK_OUT_FD, inheritable=False)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return AgentChannel(in_fd, out_fd)


def harden_agent() -> None:
    with contextlib.suppress(OSError):
        steps.set_non_dumpable()
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(number, signal.SIG_DFL)
    become_reaper()


def hello() -> Hello:
    import pytest

    from pytest_isolate._version import __version__

    return Hello(
        python=sys.version.split()[0], pytest=pytest.__version__, pid=os.getpid(), agent=__version__
    )


def pytest_args(start: StartRequest) -> List[str]:
    return list(start.args)


def main(argv: List[str] | None = None) -> int:
    channel = take_stdio()
    harden_agent()
    try:
        channel.send(hello().to_message())
        request = parse_broker_message(channel.receive())
        if not isinstance(request, StartRequest):
            raise SystemExit(f"pytest-isolate agent: expected 'start', got {request!r}")
        return run_session(channel, request)
    except BrokerGone:
        return 0
    finally:
        kill_leftovers(deadline=2.0)


def run_session(channel: AgentChannel, start: StartRequest) -> int:
    import pytest

    from pytest_isolate.agent.worker import AgentWorker, collected_message_for_failure

    os.chdir(start.invocation_dir)
    # Plugins come from the broker's arguments only: the target's installed
    # plugins may not match the broker's, and pytest and this package are
    # injected by PYTHONPATH, without entry points.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    worker = AgentWorker(channel, start.limits, start.options, start.coverage)
    if start.coverage is not None:
        # Collection imports the project: a plain run measures those lines in its
        # own process, an untrusted broker never imports it. Measured here, sent
        # with the first test.
        worker.measure_collection(start.rootdir)
    code = pytest.main(pytest_args(start), plugins=[worker])
    if not worker.collected_sent:
        channel.send(collected_message_for_failure(int(code)))
        with contextlib.suppress(BrokerGone):
            while parse_broker_message(channel.receive()) != "shutdown":
                channel.send({"type": "refused", "message": "nothing was collected"})
    return 0
