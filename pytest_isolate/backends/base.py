"""The contract every backend keeps, built-in or third-party.

A backend turns an :class:`~pytest_isolate.spec.IsolateSpec` into a running
target and gives back what happened as a :class:`TargetResult`. The broker
does the rest (logging reports through pytest's hooks, the summary), so a
backend never touches the terminal or other tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pytest_isolate.supervision.result import FailureKind, TargetResult

__all__ = [
    "DEFAULT_CHANNELS",
    "Availability",
    "Backend",
    "FailureKind",
    "TargetResult",
    "backend_channels",
    "backend_prepare_target",
    "backend_variant_keyword",
]

if TYPE_CHECKING:
    import pytest

    from pytest_isolate.spec import IsolateSpec
    from pytest_isolate.supervision.context import BrokerContext


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here; when not, why and how to fix it."""

    available: bool
    reason: str = ""
    fix: str = ""
    details: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return self.available


@runtime_checkable
class Backend(Protocol):
    """A way to make targets. Implementations are small classes, registered by hook.

    Two class attributes are optional, read through :func:`backend_channels`
    and :func:`backend_variant_keyword`: ``channels``, the channels its
    targets can talk over (default ``("pipe", "shm")``; a spawned target talks
    over its own stream: ``("pipe",)``), and ``variant_keyword``, the keyword
    that ``--isolate-matrix=NAME:VALUE`` sets (the container backend's
    ``image``; default none). An optional method, ``prepare_target(item, spec,
    context)`` (read through :func:`backend_prepare_target`), starts a slow
    target before the test's line is printed, so its progress lines stand on
    their own; ``run`` reports anything that went wrong there. Another,
    ``forks(spec)`` (read through :func:`backend_forks`, default no), says
    whether the target is a fork of the broker, which keeps the user's terminal
    (``ForkedBackend`` has it).
    """

    #: the name users write in ``isolate("...")``
    name: str
    #: one line for ``--markers`` and the doctor
    summary: str
    #: keywords this backend accepts beyond the common ones, with help text
    keywords: Mapping[str, str]

    def availability(self) -> Availability:
        """Cheap check, cached by the caller: can this backend run on this machine?"""

    def validate(self, spec: IsolateSpec, where: str) -> None:
        """Raise SpecError for option values this backend cannot use (pure)."""

    def variants(self, spec: IsolateSpec) -> list[IsolateSpec]:
        """Split a spec into matrix entries (e.g. one per image); ``[spec]`` when none."""

    def run(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> TargetResult:
        """Run ``item`` in a target made for ``spec`` and report what happened."""

    def close(self) -> None:
        """Release everything kept for the session (containers, VMs, cgroups)."""


#: The channels of a forked target: a socket pair, or a shared-memory ring beside it.
DEFAULT_CHANNELS: tuple[str, ...] = ("pipe", "shm")


def backend_channels(backend: Backend) -> tuple[str, ...]:
    """The channels ``backend``'s targets can talk over, the first one its default."""
    return tuple(getattr(backend, "channels", DEFAULT_CHANNELS))


def backend_variant_keyword(backend: Backend) -> str | None:
    """The keyword ``--isolate-matrix=NAME:VALUE`` sets for ``backend``, if any."""
    keyword = getattr(backend, "variant_keyword", None)
    return keyword if isinstance(keyword, str) else None


def backend_forks(backend: Backend, spec: IsolateSpec) -> bool:
    """Does ``spec`` run in a fork of the broker? ``backend``'s optional ``forks``; else no."""
    forks = getattr(backend, "forks", None)
    return bool(forks(spec)) if callable(forks) else False


def backend_prepare_target(
    backend: Backend,
) -> Callable[[pytest.Item, IsolateSpec, BrokerContext], None] | None:
    """``backend``'s optional ``prepare_target``, or None."""
    prepare = getattr(backend, "prepare_target", None)
    return prepare if callable(prepare) else None
