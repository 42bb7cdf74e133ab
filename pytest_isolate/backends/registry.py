"""The set of backends known to this run, filled through the registration hook.

A backend may be registered *deferred*, by name and import path
(:class:`DeferredBackend`): its module is imported the first time the run
asks for it. Every pytest process that loads the plugin builds a registry,
including each target's own pytest (the agent in a container or a guest),
and importing all five built-in backends there cost about half of the
plugin's import time on the host and two seconds in a TCG guest, for
backends that run never uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_isolate.backends.base import Availability, Backend, TargetResult


@dataclass(frozen=True)
class DeferredBackend:
    """A backend named now and made on first use: ``path`` is ``"package.module:Class"``.

    The class is instantiated without arguments; what it registers under
    must be ``name``.
    """

    name: str
    path: str

    def load(self) -> Backend:
        """The backend, or a stand-in that is unavailable and says why it could not be made."""
        module_name, _, attribute = self.path.partition(":")
        try:
            backend = getattr(importlib.import_module(module_name), attribute)()
        except Exception as exc:  # a broken third-party backend fails its own tests, not the run
            return UnloadableBackend(self, f"{type(exc).__name__}: {exc}")
        if not isinstance(backend, Backend):
            return UnloadableBackend(self, "it does not implement the Backend protocol")
        if backend.name != self.name:
            return UnloadableBackend(self, f"it is named {backend.name!r}")
        return backend


class StandInBackend:
    """Stands in for a backend this run cannot make: unavailable, with why and the fix.

    Its tests fail (or skip, with ``--isolate-unavailable=skip``) saying so,
    and the doctor lists it; the rest of the run goes on.
    """

    keywords: Mapping[str, str] = {}

    def __init__(self, name: str, summary: str, reason: str, fix: str) -> None:
        self.name = name
        self.summary = summary
        self._availability = Availability(False, reason, fix)

    def availability(self) -> Availability:
        return self._availability

    def validate(self, spec: Any, where: str) -> None:
        pass

    def variants(self, spec: Any) -> list[Any]:
        return [spec]

    def run(self, item: Any, spec: Any, context: Any) -> TargetResult:
        raise RuntimeError(self._availability.reason)

    def close(self) -> None:
        pass


class UnloadableBackend(StandInBackend):
    """A deferred backend whose module, class or instance failed."""

    def __init__(self, deferred: DeferredBackend, problem: str) -> None:
        module = deferred.path.partition(":")[0]
        super().__init__(
            deferred.name,
            f"{deferred.name} (could not be loaded)",
            f"backend {deferred.name!r} registered as {deferred.path!r} "
            f"could not be made: {problem}",
            f"check that it imports: python -c 'import {module}'",
        )


class BackendRegistry:
    """Name -> backend, with each backend's availability computed once per run."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._deferred: dict[str, DeferredBackend] = {}
        self._availability: dict[str, Availability] = {}

    def register(self, backend: Backend | DeferredBackend) -> None:
        if isinstance(backend, DeferredBackend):
            self._backends.pop(backend.name, None)
            self._deferred[backend.name] = backend
        elif isinstance(backend, Backend):
            self._deferred.pop(backend.name, None)
            self._backends[backend.name] = backend
        else:
            raise TypeError(f"{backend!r} does not implement the pytest_isolate Backend protocol")
        self._availability.pop(backend.name, None)

    def get(self, name: str) -> Backend:
        if name in self._deferred:
            self._backends[name] = self._deferred.pop(name).load()
        return self._backends[name]

    def names(self) -> list[str]:
        return sorted({*self._backends, *self._deferred})

    def __contains__(self, name: object) -> bool:
        return name in self._backends or name in self._deferred

    def __iter__(self) -> Iterator[Backend]:
        return iter(self.get(name) for name in self.names())

    def availability(self, name: str) -> Availability:
        if name not in self._availability:
            try:
                self._availability[name] = self.get(name).availability()
            except Exception as exc:  # a broken third-party check must not break the run
                self._availability[name] = Availability(False, f"availability check failed: {exc}")
        return self._availability[name]

    def close(self) -> None:
        """Close the backends this run made (a deferred one never made holds nothing)."""
        for backend in self._backends.values():
            backend.close()
