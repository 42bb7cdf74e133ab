"""Long-lived spawned targets (containers, jailed agents, VMs), one per configuration.

Starting a spawned target costs from half a second (a container) to seconds
(a VM), so each distinct configuration gets one, reused by every test that
asks for it; ``fresh=True`` gets one of its own, stopped after its test. A
target that died is forgotten, so the next test starts a new one; a
configuration that failed to start is remembered, so its later tests fail at
once with the same reason instead of paying the start again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class TargetPool(Generic[K, T]):
    """Targets by configuration key, with their start failures remembered."""

    def __init__(self, stop: Callable[[T], None], alive: Callable[[T], bool]) -> None:
        self._stop = stop
        self._alive = alive
        self._targets: dict[K, T] = {}
        self._failures: dict[K, str] = {}

    def failure(self, key: K, fresh: bool) -> str | None:
        """Why this configuration could not start earlier in the run (never for fresh ones)."""
        return None if fresh else self._failures.get(key)

    def remember_failure(self, key: K, fresh: bool, message: str) -> None:
        if not fresh:
            self._failures[key] = message

    def acquire(self, key: K, fresh: bool, start: Callable[[], T]) -> tuple[T, bool]:
        """The running target for ``key`` or a new one from ``start``; True when new."""
        if not fresh and key in self._targets:
            if self._alive(self._targets[key]):
                return self._targets[key], False
            with contextlib.suppress(Exception):  # it died (or its engine did) between tests
                self._stop(self._targets.pop(key))
        target = start()
        if not fresh:
            self._targets[key] = target
        return target, True

    def release(self, key: K, target: T, fresh: bool) -> None:
        """After a test: stop a fresh or dead target and forget it."""
        if fresh or not self._alive(target):
            if self._targets.get(key) is target:
                del self._targets[key]
            with contextlib.suppress(Exception):
                self._stop(target)

    def close(self) -> None:
        targets, self._targets = list(self._targets.values()), {}
        for target in targets:
            with contextlib.suppress(Exception):
                self._stop(target)
        self._failures.clear()
