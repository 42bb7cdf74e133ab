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
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_isolate.backends.agent_args import (
    agent_base_args,
    coverage_for_target,
    execution_count,
    forwarded_options,
)
from pytest_isolate.backends.base import Availability, TargetResult
from pytest_isolate.backends.container_config import (
    KEYWORDS,
    ContainerConfig,
    config_from_spec,
    missing_module_hint,
    split_images,
)
from pytest_isolate.backends.spawned_policy import check_spawned_policy, spawned_policy
from pytest_isolate.backends.target_plugins import left_out_note, target_plugins
from pytest_isolate.backends.target_pool import TargetPool
from pytest_isolate.spec import IsolateSpec, SpecError
from pytest_isolate.supervision.context import BrokerContext

if TYPE_CHECKING:
    from pytest_isolate.backends.container_target import ContainerTarget


class ContainerBackend:
    name = "container"
    #: spawned targets talk over their engine's stream; the shm ring needs a fork
    channels = ("pipe",)
    summary = "a Docker container per configuration, a fresh fork inside it per test"
    keywords: Mapping[str, str] = KEYWORDS
    #: ``--isolate-matrix=container:IMAGE`` sets this keyword
    variant_keyword = "image"

    def __init__(self) -> None:
        self._engine: Any = None
        self._pool: TargetPool[ContainerConfig, ContainerTarget] = TargetPool(
            lambda target: target.close(), lambda target: target.alive
        )
        self._run_id = uuid.uuid4().hex[:16]
        self._site: Path | None = None

    # -- pure -------------------------------------------------------------
    def availability(self) -> Availability:
        from pytest_isolate.container.engine import engine_available

        ok, text = engine_available()
        if ok:
            return Availability(True, text)
        return Availability(False, text, "scripts/setup-machine (starts dockerd)")

    def validate(self, spec: IsolateSpec, where: str) -> None:
        images = spec.option("image")
        if isinstance(images, tuple) and not images:
            raise SpecError(f"{where}: image=[] names no image")
        for variant in split_images(spec):
            config_from_spec(variant, where)
        check_spawned_policy(spec, where)  # on top of the engine's own default profile

    def variants(self, spec: IsolateSpec) -> list[IsolateSpec]:
        return split_images(spec)

    # -- running ----------------------------------------------------------
    def run(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> TargetResult:
        from pytest_isolate.backends.container_target import ContainerStartError
        from pytest_isolate.container.engine import EngineUnavailableError

        try:
            config = config_from_spec(spec, item.nodeid)
            policy = spawned_policy(spec, item.nodeid)
        except SpecError as exc:
            return TargetResult(failure=f"usage error: {exc}", failure_kind="usage")
        failure = self._pool.failure(config, spec.fresh)
        if failure is not None:
            return TargetResult(failure=failure, failure_kind="engine")
        try:
            target = self._target_for(item, config, spec, context)
        except EngineUnavailableError as exc:
            return TargetResult(failure=str(exc), failure_kind="engine")
        except ContainerStartError as exc:
            message = f"container backend: {exc}"
            self._pool.remember_failure(config, spec.fresh, message)
            return TargetResult(failure=message, failure_kind="engine")
        try:
            if item.nodeid not in target.collected.nodeids:
                return self._not_collected(target, config)
            return target.run(item.nodeid, spec, context.limits, policy, execution_count(item))
        finally:
            self._pool.release(config, target, spec.fresh)

    def _not_collected(self, target: ContainerTarget, config: ContainerConfig) -> TargetResult:
        errors = "\n".join(target.collected.errors) or "(no collection error reported)"
        hint = missing_module_hint(errors, config.image)
        failure = "the container did not collect this test" + (f": {hint}" if hint else "")
        return TargetResult(
            failure=failure,
            failure_kind="engine",
            sections=[("Collection errors in the container", errors[-20000:])],
        )

    def _target_for(
        self, item: pytest.Item, config: ContainerConfig, spec: IsolateSpec, context: BrokerContext
    ) -> ContainerTarget:
        from pytest_isolate.backends.container_target import ContainerTarget
        from pytest_isolate.backends.inject import injected_site
        from pytest_isolate.container.reaping import run_labels

        def start() -> ContainerTarget:
            engine = self._connect()
            if self._site is None:
                plugins = target_plugins(item.config)
                self._site = injected_site(None, plugins.modules, plugins.distributions)
            project = _project_view(item, config, spec, context)
            return ContainerTarget.launch(
                engine, config, project, self._site, run_labels(self._run_id), context.limits
            )

        target, new = self._pool.acquire(config, spec.fresh, start)
        if new and (note := left_out_note(item.config)):
            _progress(item.config, note)
        if new and not spec.fresh:
            _progress(
                item.config,
                f"pytest-isolate: container {config.image} ready in {target.started_in:.2f} s "
                f"({len(target.collected.nodeids)} tests collected in it)",
            )
        return target

    def _connect(self) -> Any:
        if self._engine is None:
            from pytest_isolate.container.engine import connect_engine
            from pytest_isolate.container.reaping import reap_leftovers

            self._engine = connect_engine()
            reap_leftovers(self._engine)
        return self._engine

    def close(self) -> None:
        self._pool.close()
        if self._engine is not None:
            with contextlib.suppress(Exception):
                self._engine.close()
            self._engine = None


def _project_view(
    item: pytest.Item, config: ContainerConfig, spec: IsolateSpec, context: BrokerContext
) -> Any:
    """Rootdir, invocation dir and the pytest arguments that reproduce the broker's node ids."""
    from pytest_isolate.backends.container_target import ProjectView

    pytest_config = item.config
    rootdir = str(pytest_config.rootpath)
    invocation = str(pytest_config.invocation_params.dir)
    if not (invocation + os.sep).startswith(rootdir + os.sep) and invocation != rootdir:
        invocation = rootdir
    if spec.fresh:
        files = {str(item.path)}
    else:
        files = {
            str(other.path)
            for other, other_spec in context.siblings(item, "container")
            if _same_config(other_spec, config)
        } or {str(item.path)}
    args = agent_base_args(pytest_config, rootdir)
    for option, flag in (("isolate", "--isolate"), ("isolate_matrix", "--isolate-matrix")):
        value = pytest_config.getoption(option, None)
        if isinstance(value, str):
            args.append(f"{flag}={value}")
    args += sorted(files)
    options = tuple(forwarded_options(pytest_config).items())
    return ProjectView(rootdir, invocation, tuple(args), options, coverage_for_target())


def _same_config(spec: IsolateSpec, config: ContainerConfig) -> bool:
    try:
        return config_from_spec(spec) == config
    except SpecError:
        return False


def _progress(config: pytest.Config, line: str) -> None:
    """One line on the terminal: starting a container takes long enough to be noticed."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and hasattr(reporter, "write_line"):
        reporter.write_line(line)
        return
    with contextlib.suppress(OSError):
        sys.stderr.write(line + "\n")
