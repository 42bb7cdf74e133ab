"""The untrusted target as a QEMU VM: its own kernel, no network device, the project read-only.

Boots the vm backend's guest (same shape rules: ``kernel``, ``accel``,
``memory``, ``cpus``, ``machine`` from the target spec), whose agent
collects the project and then forks per test. :class:`VmAgent` offers what
the untrusted session expects of a started target: ``collected``,
``alive``, ``run``, ``close`` and ``last_words`` (the guest console's tail,
untrusted text the session neutralises before printing).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pytest_isolate.backends.agent_args import coverage_for_target
from pytest_isolate.backends.base import TargetResult
from pytest_isolate.spec import IsolateSpec
from pytest_isolate.wire.agent_protocol import Collected, StartRequest
from pytest_isolate.wire.frames import FrameLimits


class VmAgent:
    """A booted guest whose agent has collected and waits for tests."""

    def __init__(self, guest: Any, client: Any, collected: Collected) -> None:
        self.guest = guest
        self.client = client
        self.collected = collected

    @property
    def alive(self) -> bool:
        return self.client.dead is None

    def last_words(self) -> str:
        from pytest_isolate.backends.vm import CONSOLE_TAIL

        return str(self.guest.console_tail(CONSOLE_TAIL))

    def run(self, nodeid: str, spec: IsolateSpec, limits: FrameLimits) -> TargetResult:
        result: TargetResult = self.client.run(nodeid, spec, limits)
        if self.client.dead is not None:  # the guest is gone or broke the protocol: end it
            result.sections.append(("guest console (tail)", self.last_words()))
            self.guest.kill()
            result.failure = f"{result.failure or 'the VM went away'}; the VM was destroyed"
            result.failure_kind = result.failure_kind or "crash"
        return result

    def close(self) -> None:
        self.client.shutdown()
        self.guest.kill()


def launch_vm(
    spec: IsolateSpec,
    rootdir: str,
    invocation: str,
    args: Sequence[str],
    limits: FrameLimits,
) -> VmAgent:
    """Boot, say hello, collect; the guest is killed on any failure."""
    from pytest_isolate._package import PACKAGE_DIR
    from pytest_isolate.backends.vm import (
        COLLECT_TIMEOUT,
        HELLO_TIMEOUT,
        KILL_GRACE,
        agent_config,
        guest_end_words,
        guest_shape,
    )
    from pytest_isolate.supervision.agent_client import AgentClient
    from pytest_isolate.vm import Guest

    shape = guest_shape(spec, "--isolate-untrusted")
    package_dir = PACKAGE_DIR
    guest = Guest.start(agent_config(shape, sys.executable, package_dir, [rootdir], rootdir))
    try:
        guest.wait_ready()
        client = AgentClient(
            guest.channel,
            kill_grace=KILL_GRACE,
            describe_stream_end=lambda: guest_end_words(guest.console_tail(65536), guest.wait(1.0)),
        )
        client.hello(timeout=HELLO_TIMEOUT)
        collected = client.start(
            StartRequest(rootdir, invocation, tuple(args), limits, coverage=coverage_for_target()),
            timeout=COLLECT_TIMEOUT,
        )
    except BaseException:
        guest.kill()
        raise
    return VmAgent(guest, client, collected)
