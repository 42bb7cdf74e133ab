"""What every spawned target (a container, a jailed agent, a VM) is to its backend.

The agent in it has said hello and collected; the broker then asks it to run
one test at a time. Subclasses know how to start and stop their engine.
"""

from __future__ import annotations

import time

from pytest_isolate.spec import IsolateSpec
from pytest_isolate.supervision.agent_client import AgentClient, RunPolicy
from pytest_isolate.supervision.result import TargetResult
from pytest_isolate.wire.agent_protocol import Collected, StartRequest
from pytest_isolate.wire.frames import FrameLimits


class AgentTarget:
    """A started target whose agent collected and waits for ``run`` requests."""

    client: AgentClient
    collected: Collected = Collected(())
    started_in: float = 0.0
    #: Started ahead of its test (``handshake_ahead``): its answers are not read yet.
    pending: bool = False
    #: Where the start-up time went, step by step (shown under ``-v``).
    start_steps: list[tuple[str, float]]

    def step_done(self, name: str, since: float) -> float:
        """Note a start-up step that began at ``since``; the time it ended."""
        now = time.monotonic()
        if not hasattr(self, "start_steps"):
            self.start_steps = []
        self.start_steps.append((name, now - since))
        return now

    def handshake(self, start: StartRequest, hello_timeout: float, collect_timeout: float) -> None:
        """Hello, then collection inside the target; raises ``AgentDead`` on failure."""
        self._answers(hello_timeout, collect_timeout, start)

    def handshake_ahead(self, start: StartRequest) -> None:
        """Send ``start`` now, before the hello: the agent starts and collects on its own.

        For a target started while another test runs (``finish_handshake``
        reads both answers when its test comes). Only where the stream buffers
        what is written before the agent reads (a container's attached stdin).
        """
        self.client.send_start(start)
        self.pending = True

    def finish_handshake(self, hello_timeout: float, collect_timeout: float) -> None:
        """The hello and the collection that ``handshake_ahead`` asked for."""
        self._answers(hello_timeout, collect_timeout)
        self.pending = False

    def _answers(
        self, hello_timeout: float, collect_timeout: float, start: StartRequest | None = None
    ) -> None:
        """Read the hello; send ``start`` if not sent ahead; read the collection. Timed by step."""
        began = time.monotonic()
        self.client.hello(hello_timeout)
        began = self.step_done("agent hello", began)
        if start is not None:
            self.client.send_start(start)
        self.collected = self.client.collection(collect_timeout)
        self.step_done("collection", began)

    def finish_start(self) -> None:
        """Finish a target started ahead: read its answers; on failure, close it and raise."""
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        return self.client.dead is None

    def run(
        self,
        nodeid: str,
        spec: IsolateSpec,
        limits: FrameLimits,
        policy: RunPolicy | None = None,
        execution_count: int | None = None,
    ) -> TargetResult:
        return self.client.run(nodeid, spec, limits, policy, execution_count)

    def close(self) -> None:
        """Stop the target and everything in it (its engine says how)."""
        raise NotImplementedError
