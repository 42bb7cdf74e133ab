"""Run-wide state a backend may use: the config, limits, the process tree, scratch space."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from pytest_isolate.liveness import owner_is_gone, owner_tag
from pytest_isolate.spec import IsolateSpec
from pytest_isolate.wire.frames import FrameLimits

if TYPE_CHECKING:
    from pytest_isolate.supervision.tree import ProcessTree

SCRATCH_PREFIX = "pytest-isolate-"


class SpareTarget(Protocol):
    """A target forked ahead of its test (``backends/forked.py``), waiting to be started."""

    item: pytest.Item

    def discard(self) -> None:
        """End it unused: it inherited broker state that no longer holds."""


class EndingTarget(Protocol):
    """A target whose test is reported while it still exits (``backends/forked.py``)."""

    def settle(self) -> LateExit | None:
        """Collect its exit, kill its tree, free what the broker holds; why not normal, or None."""


@dataclass(frozen=True)
class LateExit:
    """A target that ended badly after it had sent its test's last report."""

    label: str
    nodeid: str
    why: str


@dataclass
class BrokerContext:
    """Created once per broker (per xdist worker) when the first isolated test runs."""

    config: pytest.Config
    limits: FrameLimits = field(default_factory=FrameLimits)
    kill_grace: float = 1.0
    #: Where each test of the run goes (None: the broker runs it itself), as the
    #: session layer decided; backends ask through :meth:`siblings`.
    spec_of: Callable[[pytest.Item], IsolateSpec | None] = lambda item: None
    #: The test that runs after the current one, when its target may be forked
    #: while the current one runs (the session layer decides; None: it may not).
    next_item: pytest.Item | None = None
    #: The test after ``next_item``, under the same rule, when the broker knows it
    #: (never under xdist, whose scheduler hands a worker its tests as it goes).
    item_after_next: pytest.Item | None = None
    #: ``warnings.filters`` between tests: what a target forked during another
    #: test's protocol goes back to before entering its own test's filters.
    warning_filters: list[Any] | None = None
    #: Report a test at its ``done``, and collect its target's exit while the broker
    #: reports it (``isolate_prefork``, as forking ahead): ``keep_ending``, ``settle``.
    pipeline: bool = True
    #: Targets that ended badly after their test was reported (the run's summary names them).
    late_exits: list[LateExit] = field(default_factory=list)
    _tree: ProcessTree | None = None
    _scratch_root: Path | None = None
    _spare: SpareTarget | None = None
    _ending: EndingTarget | None = None

    @property
    def tree(self) -> ProcessTree:
        """The cgroup tree (or subreaper), made by the first forked target that needs it:
        its modules stay unimported in an agent, which builds a context but never a tree."""
        if self._tree is None:
            from pytest_isolate.supervision.tree import make_process_tree

            self._tree = make_process_tree()
        return self._tree

    @property
    def scratch_root(self) -> Path:
        """A private directory of this broker; each target gets a subdirectory of it."""
        if self._scratch_root is None:
            remove_stale_scratch()
            self._scratch_root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{owner_tag()}-"))
            # Traversable (not listable) so a target that dropped to another uid
            # can reach the subdirectory it was given, and no other.
            self._scratch_root.chmod(0o711)
        return self._scratch_root

    def siblings(
        self, item: pytest.Item, backend: str
    ) -> Iterator[tuple[pytest.Item, IsolateSpec]]:
        """The run's tests (``item`` among them) that go to ``backend``, with their specs.

        A spawned target collects once for every test that can share it, so a
        backend looks here for the tests whose configuration matches.
        """
        for other in item.session.items:
            spec = self.spec_of(other)
            if spec is not None and spec.backend == backend:
                yield other, spec

    def new_scratch(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.scratch_root))
        return path

    def keep_spare(self, spare: SpareTarget) -> None:
        """Hold ``spare`` for its test; at most one is held (a previous one is discarded)."""
        self.drop_spare()
        self._spare = spare

    def take_spare(self, item: pytest.Item) -> SpareTarget | None:
        """The spare prepared for ``item``, or None; a spare for another test is discarded."""
        spare, self._spare = self._spare, None
        if spare is not None and spare.item is not item:
            spare.discard()
            return None
        return spare

    def drop_spare(self) -> None:
        """The broker's state changed (a plain test, a fixture in the broker): no spare fits."""
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.discard()

    def keep_ending(self, ending: EndingTarget) -> None:
        """Hold ``ending`` until the next test, or the run's end, needs its exit collected."""
        self.settle()
        self._ending = ending

    def settle(self) -> None:
        """Finish the target still exiting, if any: before any other test's code runs.

        Its tree is killed and reaped here, so the process tree is empty when
        the next target joins it and its limits change.
        """
        ending, self._ending = self._ending, None
        if ending is not None:
            late = ending.settle()
            if late is not None:
                self.late_exits.append(late)

    def close(self) -> None:
        self.settle()
        self.drop_spare()
        if self._tree is not None:
            self._tree.close()
        if self._scratch_root is not None:
            shutil.rmtree(self._scratch_root, ignore_errors=True)


def remove_stale_scratch() -> None:
    """Remove scratch directories of brokers that died without cleaning up."""
    base = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            if not entry.name.startswith(SCRATCH_PREFIX):
                continue
            owner = entry.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
            if owner_is_gone(owner):
                shutil.rmtree(entry, ignore_errors=True)
