"""``isolate("container", image=...)``: each test in a fresh fork inside a Docker container.

One container per distinct configuration (image, user, mounts, limits...)
per broker, started when its first test runs and reused for the rest: the
agent in it collects once and forks per test, so a test costs a fork, not a
container start. ``fresh=True`` gives a test a container of its own.

What it stops (each claim has a hostile test in tests/backends): reading
host files other than the project (mounted read-only) and the injected
packages; writing the project; the network (no interface but lo); the
Docker socket; the broker's environment (the container gets a fresh one);
fork bombs (pids limit) and memory hogs (memory limit); outliving the test
(the agent is PID 1 and kills everything after each test) or the broker
(stdin is the lifeline: when the broker dies the container ends and is
removed). Options that loosen the defaults: ``network=True``,
``read_only=False``, ``user="root"``, ``mounts=[...]`` (``:rw``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_isolate.backends.announce import announce
from pytest_isolate.backends.base import Availability, TargetResult
from pytest_isolate.backends.container_config import (
    KEYWORDS,
    ContainerConfig,
    config_from_spec,
    missing_module_hint,
    split_images,
)
from pytest_isolate.backends.container_pool import give_image, lost_message, retry_lost
from pytest_isolate.backends.spawned import (
    SpawnedTargets,
    fresh_followers,
    sibling_files,
    start_request,
)
from pytest_isolate.backends.spawned_policy import check_spawned_policy, spawned_policy
from pytest_isolate.spec import IsolateSpec, SpecError
from pytest_isolate.supervision.context import BrokerContext

if TYPE_CHECKING:
    from pytest_isolate.backends.container_target import ContainerTarget
    from pytest_isolate.container.engine_pool import EnginePool
    from pytest_isolate.supervision.agent_client import RunPolicy


class ContainerBackend:
    name = "container"
    #: spawned targets talk over their engine's stream; the shm ring needs a fork
    channels = ("pipe",)
    summary = "a Docker container per configuration, a fresh fork inside it per test"
    keywords: Mapping[str, str] = KEYWORDS
    #: ``--isolate-matrix=container:IMAGE`` sets this keyword
    variant_keyword = "image"

    def __init__(self) -> None:
        self._targets = ContainerTargets()

    @property
    def pool(self) -> EnginePool | None:
        """The run's ``--isolate-engines``, if given (``container_pool.configure`` sets it)."""
        return self._targets.engines

    @pool.setter
    def pool(self, pool: EnginePool | None) -> None:
        self._targets.engines = pool

    # -- pure -------------------------------------------------------------
    def availability(self) -> Availability:
        from pytest_isolate.container.engine import FIX_LOCAL_ENGINE, GVISOR_FIX, engine_facts

        if self.pool is not None:
            return self.pool_availability(self.pool)
        ok, text, runtimes = engine_facts()  # one connection for the run's start
        if not ok:
            return Availability(False, text, FIX_LOCAL_ENGINE)
        gvisor = (
            "registered as 'runsc': isolate('container', runtime='runsc') or "
            "--isolate-container-runtime=runsc"
            if "runsc" in runtimes
            else f"not registered; to add it: {GVISOR_FIX}"
        )
        return Availability(
            True, text, details=(("runtimes", ", ".join(runtimes) or "?"), ("gVisor", gvisor))
        )

    @staticmethod
    def pool_availability(pool: EnginePool) -> Availability:
        """With ``--isolate-engines``: available while one engine of the pool answers."""
        usable = pool.usable()
        if not usable:
            return Availability(False, pool.none_left(), "start one of them, or fix its URL")
        return Availability(
            True, f"engine pool: {len(usable)} of {len(pool.members)} engines answer"
        )

    def validate(self, spec: IsolateSpec, where: str) -> None:
        images = spec.option("image")
        if isinstance(images, tuple) and not images:
            raise SpecError(f"{where}: image=[] names no image")
        for variant in split_images(spec):
            config_from_spec(variant, where)
        check_spawned_policy(spec, where)  # on top of the engine's own profile

    def variants(self, spec: IsolateSpec) -> list[IsolateSpec]:
        return split_images(spec)

    # -- running ----------------------------------------------------------
    def run(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> TargetResult:
        try:
            config = config_from_spec(spec, item.nodeid)
            # Always at least our baseline, as in a jail: the engine's own profile varies
            # with its version (some allow io_uring, whose operations no filter sees).
            # Under emulation the engine loads it (``policy.engine_profile``): qemu-user
            # refuses a filter from the program it runs.
            policy = (
                None if config.foreign else spawned_policy(spec, item.nodeid, default=ALWAYS_ON)
            )
        except SpecError as exc:
            return TargetResult(failure=f"usage error: {exc}", failure_kind="usage")
        ahead = fresh_followers(item, context, self.name, config_from_spec)
        return self._targets.run(item, spec, context, config, policy, ahead)

    def prepare_target(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> None:
        """Before the test's line: start its container (a bad spec is reported by ``run``)."""
        with contextlib.suppress(SpecError):
            self._targets.prepare(item, spec, context, config_from_spec(spec, item.nodeid))

    def close(self) -> None:
        self._targets.close()


#: The filter every container test gets when it asks for none: our baseline kill list.
ALWAYS_ON = {"policy": "permissive"}


class ContainerTargets(SpawnedTargets[ContainerConfig, "ContainerTarget"]):
    """One container per configuration, its agent collected once; a fresh one for ``fresh``."""

    def __init__(self) -> None:
        from pytest_isolate.backends.container_target import ContainerStartError
        from pytest_isolate.container.engine import EngineUnavailableError

        super().__init__()
        self.start_errors = (EngineUnavailableError, ContainerStartError)
        self._engine: Any = None
        self._run_id = uuid.uuid4().hex[:16]
        #: The engine of the pool lost during the test being run, if any (``judge``).
        self._lost_during: str | None = None
        #: The run's engine pool; None: the one engine ``DOCKER_HOST`` names.
        self.engines: EnginePool | None = None

    def describe(self, key: ContainerConfig) -> str:
        return f"container {key.image}"

    def launch(
        self, item: pytest.Item, key: ContainerConfig, spec: IsolateSpec, context: BrokerContext
    ) -> ContainerTarget:
        return self._launch(item, key, spec, context, wait=True)

    def launch_ahead(
        self, item: pytest.Item, key: ContainerConfig, spec: IsolateSpec, context: BrokerContext
    ) -> ContainerTarget:
        """Create and start the container, send the agent its start: it collects meanwhile."""
        return self._launch(item, key, spec, context, wait=False)

    def _launch(
        self,
        item: pytest.Item,
        key: ContainerConfig,
        spec: IsolateSpec,
        context: BrokerContext,
        wait: bool,
    ) -> ContainerTarget:
        pool = self.engines
        if pool is None:
            return self._launch_on(self._connect(), item, key, spec, context, wait)
        while True:  # the least loaded engine of the pool; one lost meanwhile is dropped
            member = pool.choose()
            assert member.engine is not None
            try:
                if key.dockerfile is None:
                    give_image(member, key.image, lambda line: announce(item.config, line))
                target = self._launch_on(member.engine, item, key, spec, context, wait)
            except Exception:
                why = pool.still_answers(member)
                if why is None:
                    raise  # the engine is fine: the image, the configuration or the agent
                pool.lose(member, why)
                announce(item.config, f"engine {member.url} lost ({why}); not used any more")
                continue
            member.started += 1
            target.member = member
            return target

    def _launch_on(
        self,
        engine: Any,
        item: pytest.Item,
        key: ContainerConfig,
        spec: IsolateSpec,
        context: BrokerContext,
        wait: bool = True,
    ) -> ContainerTarget:
        from pytest_isolate.backends.container_target import ContainerTarget
        from pytest_isolate.container.reaping import run_labels

        site = self.plugin_site(item.config)
        rootdir = str(item.config.rootpath)
        files = sibling_files(item, spec, context, lambda other: _same_config(other, key))
        request = start_request(item.config, rootdir, files, context.limits)
        labels = run_labels(self._run_id)
        return ContainerTarget.launch(engine, key, request, site, labels, wait=wait)

    def run(
        self,
        item: pytest.Item,
        spec: IsolateSpec,
        context: BrokerContext,
        key: ContainerConfig,
        policy: RunPolicy | None = None,
        ahead: Sequence[tuple[pytest.Item, IsolateSpec, ContainerConfig]] = (),
    ) -> TargetResult:
        """The test's result; under ``--isolate-engine-retry``, a second try if its engine died."""
        self._lost_during = None
        result = super().run(item, spec, context, key, policy, ahead)
        lost, self._lost_during = self._lost_during, None
        pool = self.engines
        if lost is None or pool is None or not retry_lost(item.config) or not pool.usable():
            return result
        again = super().run(item, spec, context, key, policy)
        pool.retried.append(item.nodeid)
        note = (
            "pytest-isolate: engine lost",
            f"The first attempt failed: {result.failure}\n"
            "This result is the second attempt's, on another engine (--isolate-engine-retry).",
        )
        calls = [report for report in again.reports if report.get("when") == "call"]
        if calls and again.failure is None:  # shown with the test's passing report (-rP)
            calls[-1].setdefault("sections", []).append(list(note))
        else:
            again.sections.insert(0, note)
        return again

    def judge(self, target: ContainerTarget, result: TargetResult) -> TargetResult:
        """A target that died with its engine: an infrastructure failure naming the engine."""
        member = getattr(target, "member", None)
        pool = self.engines
        if member is None or pool is None or target.client.dead is None:
            return result
        why = member.lost or pool.still_answers(member)
        if why is None:
            return result  # the container died, its engine did not
        pool.lose(member, why)
        if result.failure:
            result.sections.append(("pytest-isolate: how the target ended", result.failure))
        result.failure = lost_message(member, pool)
        result.failure_kind = "engine"
        self._lost_during = member.url
        return result

    def start_failure(self, key: ContainerConfig, error: BaseException) -> TargetResult:
        from pytest_isolate.backends.container_target import ContainerStartError

        if isinstance(error, ContainerStartError):
            return TargetResult(failure=f"container backend: {error}", failure_kind="engine")
        return TargetResult(failure=str(error), failure_kind="engine")

    def remember_start_failure(self, error: BaseException) -> bool:
        """An engine that did not answer is asked again by the next test; a bad image is not."""
        from pytest_isolate.backends.container_target import ContainerStartError

        return isinstance(error, ContainerStartError)

    def not_collected(
        self, target: ContainerTarget, key: ContainerConfig, nodeid: str
    ) -> TargetResult:
        errors = "\n".join(target.collected.errors) or "(no collection error reported)"
        hint = missing_module_hint(errors, key.image)
        failure = "the container did not collect this test" + (f": {hint}" if hint else "")
        return TargetResult(
            failure=failure,
            failure_kind="engine",
            sections=[("Collection errors in the container", errors[-20000:])],
        )

    def _connect(self) -> Any:
        if self._engine is None:
            from pytest_isolate.container.engine import connect_engine
            from pytest_isolate.container.reaping import reap_leftovers

            self._engine = connect_engine()
            reap_leftovers(self._engine)
        return self._engine

    def close(self) -> None:
        super().close()
        if self._engine is not None:
            with contextlib.suppress(Exception):
                self._engine.close()
            self._engine = None


def _same_config(spec: IsolateSpec, config: ContainerConfig) -> bool:
    try:
        return config_from_spec(spec) == config
    except SpecError:
        return False
