"""The spawned-backend template: what every backend whose targets run the agent shares.

A container, a guest, a jail on a foreign root: each starts an interpreter
that runs the agent, which collects the project once and then runs one test
per ``run`` request. Those backends differ only in how a target is launched;
this module holds the rest once:

- the agent's start request (``start_request``): the broker's rootdir and
  invocation directory, its pytest arguments, option values and coverage
  settings, and the test files of every test that can share the target
  (``sibling_files``, through ``BrokerContext.siblings``);
- the pooled run (:class:`SpawnedTargets`): one target per configuration,
  reused, a fresh one for ``fresh=True``; a configuration that failed to
  start fails its later tests at once with the same words; a test the agent
  did not collect fails with the agent's collection errors;
- the plugins injected into the target (``plugin_site``), and the one line a
  new target announces on the terminal.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import pytest

from pytest_isolate.backends.agent_args import (
    agent_base_args,
    coverage_for_target,
    execution_count,
    forwarded_options,
)
from pytest_isolate.backends.announce import announce
from pytest_isolate.backends.base import TargetResult
from pytest_isolate.backends.target_plugins import left_out_note, target_plugins
from pytest_isolate.backends.target_pool import TargetPool
from pytest_isolate.spec import IsolateSpec, SpecError
from pytest_isolate.supervision.agent_client import RunPolicy
from pytest_isolate.supervision.agent_target import AgentTarget
from pytest_isolate.supervision.context import BrokerContext
from pytest_isolate.wire.agent_protocol import StartRequest
from pytest_isolate.wire.frames import FrameLimits


# -- the agent's start request ------------------------------------------------------
def invocation_dir(config: pytest.Config, rootdir: str) -> str:
    """Where the agent runs pytest from: the broker's directory if inside the project."""
    invocation = str(config.invocation_params.dir)
    if invocation != rootdir and not (invocation + os.sep).startswith(rootdir + os.sep):
        return rootdir
    return invocation


def sibling_files(
    item: pytest.Item,
    spec: IsolateSpec,
    context: BrokerContext,
    shares_target: Callable[[IsolateSpec], bool],
) -> list[str]:
    """The test files of every test that runs in the same target as ``item``: collected once.

    A ``fresh=True`` test has a target of its own, which collects its file only.
    """
    files = {str(item.path)}
    if not spec.fresh:
        for other, other_spec in context.siblings(item, spec.backend):
            if shares_target(other_spec):
                files.add(str(other.path))
    return sorted(files)


def start_request(
    config: pytest.Config,
    rootdir: str,
    tail: Iterable[str],
    limits: FrameLimits,
) -> StartRequest:
    """The agent's ``start``: collect like the broker (its arguments, then ``tail``), with its
    option values and coverage settings."""
    return StartRequest(
        rootdir,
        invocation_dir(config, rootdir),
        (*agent_base_args(config, rootdir), *tail),
        limits,
        tuple(forwarded_options(config).items()),
        coverage_for_target(),
    )


# -- the pooled run ------------------------------------------------------------------
K = TypeVar("K", bound=Hashable)
T = TypeVar("T", bound=AgentTarget)


def fresh_followers(
    item: pytest.Item,
    context: BrokerContext,
    backend: str,
    key_of: Callable[[IsolateSpec, str], K],
) -> list[tuple[pytest.Item, IsolateSpec, K]]:
    """The next tests that get fresh targets of ``backend``: started while ``item`` runs.

    Up to two, in a row: both cores start one each while a short test runs,
    and the test after the next finds its target ready too.
    ``context.next_item`` and ``item_after_next`` are set only under
    ``isolate_prefork``, and never for a test another plugin drives. A spec
    ``key_of`` refuses ends the row (its own test reports it).
    """
    ahead = []
    for following in (context.next_item, context.item_after_next):
        if following is None or following is item:
            break
        spec = context.spec_of(following)
        if spec is None or spec.backend != backend or not spec.fresh:
            break
        try:
            ahead.append((following, spec, key_of(spec, following.nodeid)))
        except SpecError:
            break
    return ahead


class SpawnedTargets(Generic[K, T]):
    """The targets of one spawned backend, one per configuration ``K``, each collected once.

    A backend says how to launch a target (``launch``), what it is called on
    the terminal (``describe``), which exceptions mean it could not start
    (``start_errors``) and, optionally, how such a failure and a test its agent
    did not collect are reported.
    """

    #: Exceptions from ``launch`` that mean "this configuration cannot start".
    start_errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.pool: TargetPool[K, T] = TargetPool(
            lambda target: target.close(), lambda target: target.alive
        )
        self._site: Path | None = None
        #: Targets started (or failed to start) for a test before its line was printed:
        #: (the target or why not, fresh, started for this test).
        self._early: dict[str, tuple[T | TargetResult, bool, bool]] = {}

    # -- what a backend says -----------------------------------------------
    def launch(self, item: pytest.Item, key: K, spec: IsolateSpec, context: BrokerContext) -> T:
        raise NotImplementedError

    def launch_ahead(
        self, item: pytest.Item, key: K, spec: IsolateSpec, context: BrokerContext
    ) -> T | None:
        """Start ``item``'s fresh target without waiting for its agent (``AgentTarget.pending``).

        None: this backend cannot (its channel may not take the start request
        before the agent listens), and the test starts its target itself.
        """
        return None

    def describe(self, key: K) -> str:
        """How the terminal names a target of ``key`` ("container debian:bookworm")."""
        raise NotImplementedError

    def start_failure(self, key: K, error: BaseException) -> TargetResult:
        """The result of a test whose target could not start."""
        return TargetResult(failure=str(error), failure_kind="engine")

    def remember_start_failure(self, error: BaseException) -> bool:
        """Whether later tests of the configuration fail at once with the same words."""
        return True

    def judge(self, target: T, result: TargetResult) -> TargetResult:
        """The result of a test that ran, as reported: a backend may say more of how it ended."""
        return result

    def earlier_failure(self, message: str) -> TargetResult:
        return TargetResult(failure=message, failure_kind="engine")

    def not_collected(self, target: T, key: K, nodeid: str) -> TargetResult:
        errors = "\n".join(target.collected.errors) or "(no collection error reported)"
        return TargetResult(
            failure=f"the {self.describe(key)} did not collect this test",
            failure_kind="engine",
            sections=[(f"Collection errors in the {self.describe(key)}", errors[-20000:])],
        )

    # -- the template ------------------------------------------------------
    def plugin_site(self, config: pytest.Config) -> Path:
        """The broker's pure-Python plugins and pytest itself, copied once, for every target."""
        if self._site is None:
            from pytest_isolate.backends.inject import injected_site

            plugins = target_plugins(config)
            self._site = Path(injected_site(None, plugins.modules, plugins.distributions))
        return self._site

    def prepare(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext, key: K) -> None:
        """Start (or find) the test's target before its line is printed: progress stands apart.

        A target started ahead for it (``start_ahead``) is finished here.
        """
        early = self._early.get(item.nodeid)
        if early is not None and self._finished(early[0]):
            return
        self._early.pop(item.nodeid, None)
        if self.pool.failure(key, spec.fresh) is None:
            acquired, new = self._acquire(item, spec, context, key)
            self._early[item.nodeid] = (acquired, spec.fresh, new)

    def start_ahead(
        self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext, key: K
    ) -> None:
        """Start the fresh target of ``item``, the next test, while the current one runs.

        Its agent starts and collects meanwhile, on the other core; the test
        then finds it in ``_early``, as if started before its line. A target
        that fails to start here is closed and forgotten: the test starts its
        own, and reports what goes wrong then.
        """
        if item.nodeid in self._early or not spec.fresh:
            return
        try:
            target = self.launch_ahead(item, key, spec, context)
        except Exception:
            return
        if target is not None:
            self._early[item.nodeid] = (target, True, True)

    @staticmethod
    def _finished(acquired: T | TargetResult) -> bool:
        """Is a target started ahead ready, its agent's answers read? False: it was closed.

        A target that failed to start ahead (its agent died, its engine was
        lost meanwhile) is forgotten: its test starts one of its own, and
        reports what goes wrong then.
        """
        if isinstance(acquired, TargetResult) or not acquired.pending:
            return True
        try:
            acquired.finish_start()
        except Exception:
            return False
        return True

    def run(
        self,
        item: pytest.Item,
        spec: IsolateSpec,
        context: BrokerContext,
        key: K,
        policy: RunPolicy | None = None,
        ahead: Sequence[tuple[pytest.Item, IsolateSpec, K]] = (),
    ) -> TargetResult:
        """Run ``item`` in its target; ``ahead``: the next tests' fresh ones, started meanwhile."""
        early = self._early.pop(item.nodeid, None)
        if early is not None and self._finished(early[0]):
            acquired, _fresh, new = early
        else:
            earlier = self.pool.failure(key, spec.fresh)
            if earlier is not None:
                return self.earlier_failure(earlier)
            acquired, new = self._acquire(item, spec, context, key)
        if isinstance(acquired, TargetResult):
            return acquired
        target = acquired
        for following, following_spec, following_key in ahead:
            self.start_ahead(following, following_spec, context, following_key)
        try:
            if item.nodeid not in target.collected.nodeids:
                result = self.not_collected(target, key, item.nodeid)
            else:
                result = self.judge(
                    target,
                    target.run(item.nodeid, spec, context.limits, policy, execution_count(item)),
                )
        finally:
            self.pool.release(key, target, spec.fresh)
        if new:
            result.startup = target.started_in
        return result

    def _acquire(
        self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext, key: K
    ) -> tuple[T | TargetResult, bool]:
        """The target for ``key`` (a new one announces itself) or why it could not start; and
        whether it was started for this test."""
        try:
            target, new = self.pool.acquire(
                key, spec.fresh, lambda: self.launch(item, key, spec, context)
            )
        except self.start_errors as exc:
            result = self.start_failure(key, exc)
            if self.remember_start_failure(exc) and result.failure is not None:
                self.pool.remember_failure(key, spec.fresh, result.failure)
            return result, False
        if new:
            self.announce_new(item.config, key, target, spec.fresh)
        return target, new

    def announce_new(self, config: pytest.Config, key: K, target: T, fresh: bool) -> None:
        """A new target: the plugins it does not load (once per run), and that it is ready."""
        note = left_out_note(config)
        if note:
            announce(config, note)
        if not fresh:
            details = ""
            steps = getattr(target, "start_steps", None)
            if steps and int(getattr(config.option, "verbose", 0) or 0) > 0:  # -v: where it went
                details = ": " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in steps)
            announce(
                config,
                f"{self.describe(key)} ready in {target.started_in:.2f} s "
                f"({len(target.collected.nodeids)} tests collected in it){details}",
            )

    def close(self) -> None:
        early, self._early = list(self._early.values()), {}
        for acquired, fresh, _new in early:  # a pooled one is closed with the pool
            if fresh and not isinstance(acquired, TargetResult):
                with contextlib.suppress(Exception):
                    acquired.close()
        self.pool.close()
