"""The set of backends known to this run, filled through the registration hook."""

from __future__ import annotations

from collections.abc import Iterator

from pytest_isolate.backends.base import Availability, Backend


class BackendRegistry:
    """Name -> backend, with each backend's availability computed once per run."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._availability: dict[str, Availability] = {}

    def register(self, backend: Backend) -> None:
        if not isinstance(backend, Backend):
            raise TypeError(f"{backend!r} does not implement the pytest_isolate Backend protocol")
        self._backends[backend.name] = backend
        self._availability.pop(backend.name, None)

    def get(self, name: str) -> Backend:
        return self._backends[name]

    def names(self) -> list[str]:
        return sorted(self._backends)

    def __contains__(self, name: object) -> bool:
        return name in self._backends

    def __iter__(self) -> Iterator[Backend]:
        return iter(self._backends[name] for name in self.names())

    def availability(self, name: str) -> Availability:
        if name not in self._availability:
            try:
                self._availability[name] = self._backends[name].availability()
            except Exception as exc:  # a broken third-party check must not break the run
                self._availability[name] = Availability(False, f"availability check failed: {exc}")
        return self._availability[name]

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
