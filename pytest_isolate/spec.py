"""What an isolated test asked for: parsing and resolving options into an ``IsolateSpec``.

Everything here is pure (no OS calls) and table-tested. Resolution order is
marker keywords > command line > ini > backend default, the same for every
option. Values are frozen (lists to tuples, dicts to sorted pairs) so a spec
is hashable: the broker keys its caches (compiled seccomp programs, running
containers and VMs) on it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_BACKEND = "process"

#: Keywords every backend accepts, with the help shown by ``--markers`` and the docs.
COMMON_KEYWORDS: Mapping[str, str] = {
    "timeout": "wall-clock seconds before the target is killed",
    "mem_limit": "memory limit, bytes or with a unit: 512M, 2G",
    "cpu_limit": "CPU seconds before the target is killed",
    "network": "keep network access (default False for every backend but process)",
    "env": "extra environment variables for the target, a dict",
    "seccomp": "a seccomp policy layered inside the target: preset name or dict",
    "channel": "broker <-> target channel: pipe or shm",
    "fresh": "a new environment (container, VM) for this test instead of a shared one",
    "pids_limit": "most processes the test may have at once",
}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class SpecError(ValueError):
    """An isolate option that cannot be used; the message says what and how to fix it."""


def parse_size(value: object, what: str) -> int | None:
    """Bytes from an int or a string such as ``512M``, ``2G``, ``1.5g``, ``4096``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SpecError(f"{what}={value!r} is not a size; use bytes or 512M, 2G")
    if isinstance(value, int):
        if value <= 0:
            raise SpecError(f"{what}={value!r} must be positive")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            number = float(match.group(1)) * _UNITS[match.group(2).lower()]
            if number >= 1:
                return int(number)
    raise SpecError(f"{what}={value!r} is not a size; use bytes or a unit such as 512M, 2G")


def parse_seconds(value: object, what: str) -> float | None:
    """Positive seconds from a number or a numeric string (``"5"``, ``"2.5s"``)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().removesuffix("s")
        try:
            value = float(text)
        except ValueError:
            raise SpecError(f"{what}={value!r} is not a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{what}={value!r} is not a number of seconds")
    if not value > 0:
        raise SpecError(f"{what}={value!r} must be a positive number of seconds")
    return float(value)


def freeze(value: Any) -> Hashable:
    """A hashable, order-stable copy of a marker value."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [freeze(v) for v in value]
        return (
            tuple(sorted(items, key=repr)) if isinstance(value, (set, frozenset)) else tuple(items)
        )
    if isinstance(value, Hashable):
        return value
    raise SpecError(f"{value!r} cannot be used as an isolate option value")


def did_you_mean(unknown: Sequence[str], valid: Iterable[str]) -> str:
    """`` (did you mean timeout?)`` for misspelt keywords close to valid ones."""
    guesses = [
        close[0]
        for name in unknown
        if (close := difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.7))
    ]
    return f" (did you mean {', '.join(guesses)}?)" if guesses else ""


@dataclass(frozen=True)
class IsolateSpec:
    """The resolved request for one test item: which backend and with which limits."""

    backend: str = DEFAULT_BACKEND
    timeout: float | None = None
    mem_limit: int | None = None
    cpu_limit: float | None = None
    network: bool | None = None
    env: tuple[tuple[str, str], ...] = ()
    seccomp: Hashable = None
    channel: str = "pipe"
    fresh: bool = False
    pids_limit: int | None = None
    options: tuple[tuple[str, Hashable], ...] = ()
    variant: str | None = field(default=None, compare=True)

    def option(self, name: str, default: Any = None) -> Any:
        for key, value in self.options:
            if key == name:
                return value
        return default

    @property
    def label(self) -> str:
        """The id used in matrix items and the summary: ``process``, ``container:py311``.

        A variant that only names an architecture reads ``vm@arm64``.
        """
        if not self.variant:
            return self.backend
        separator = "" if self.variant.startswith("@") else ":"
        return f"{self.backend}{separator}{self.variant}"

    def with_options(self, **changes: Hashable) -> IsolateSpec:
        merged = dict(self.options)
        merged.update(changes)
        return replace(self, options=tuple(sorted(merged.items())))


@dataclass(frozen=True)
class Defaults:
    """Run-wide values from the command line and ini, already parsed."""

    backend: str | None = None  # --isolate[=BACKEND]: isolate unmarked tests with this
    timeout: float | None = None
    mem_limit: int | None = None
    cpu_limit: float | None = None
    channel: str = "pipe"
    #: Backend keywords given run-wide (``--isolate-container-runtime``), as
    #: ((backend, ((keyword, value), ...)), ...): a mark's own value wins.
    backend_options: tuple[tuple[str, tuple[tuple[str, Hashable], ...]], ...] = ()

    def options_for(self, backend: str) -> dict[str, Hashable]:
        return dict(dict(self.backend_options).get(backend, ()))


def check_backend_name(name: object, valid: Iterable[str], where: str) -> str:
    choices = ", ".join(sorted(valid))
    if not isinstance(name, str):
        raise SpecError(f"{where}: backend must be a name, got {name!r}; valid backends: {choices}")
    if name not in set(valid):
        raise SpecError(f"{where}: unknown backend {name!r}; valid backends: {choices}")
    return name


def build_spec(
    backend: str,
    kwargs: Mapping[str, Any],
    defaults: Defaults,
    backend_keywords: Mapping[str, str],
    where: str,
) -> IsolateSpec:
    """Resolve one mark's keywords against the run's defaults.

    ``where`` names the test for error messages. Unknown keywords are errors
    that list the keywords this backend accepts.
    """
    valid = set(COMMON_KEYWORDS) | set(backend_keywords)
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise SpecError(
            f"{where}: unknown keyword {', '.join(unknown)} for backend {backend!r}"
            f"{did_you_mean(unknown, valid)}; valid keywords: {', '.join(sorted(valid))}"
        )
    try:
        timeout = parse_seconds(kwargs.get("timeout"), "timeout")
        mem_limit = parse_size(kwargs.get("mem_limit"), "mem_limit")
        cpu_limit = parse_seconds(kwargs.get("cpu_limit"), "cpu_limit")
    except SpecError as exc:  # name the test, as every other usage error does
        raise SpecError(f"{where}: {exc}") from None
    network = kwargs.get("network")
    if network is not None and not isinstance(network, bool):
        raise SpecError(f"{where}: network={network!r} must be True or False")
    env = kwargs.get("env") or {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise SpecError(f"{where}: env={env!r} must be a dict of str to str")
    channel = kwargs.get("channel", defaults.channel)
    if channel not in ("pipe", "shm"):
        raise SpecError(f"{where}: channel={channel!r}; valid channels: pipe, shm")
    fresh = kwargs.get("fresh", False)
    if not isinstance(fresh, bool):
        raise SpecError(f"{where}: fresh={fresh!r} must be True or False")
    pids_limit = kwargs.get("pids_limit")
    if pids_limit is not None and (
        isinstance(pids_limit, bool) or not isinstance(pids_limit, int) or pids_limit < 1
    ):
        raise SpecError(f"{where}: pids_limit={pids_limit!r} must be a positive integer")
    extra = {k: freeze(v) for k, v in kwargs.items() if k in backend_keywords}
    try:
        seccomp = freeze(kwargs.get("seccomp"))
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    return IsolateSpec(
        backend=backend,
        timeout=timeout if timeout is not None else defaults.timeout,
        mem_limit=mem_limit if mem_limit is not None else defaults.mem_limit,
        cpu_limit=cpu_limit if cpu_limit is not None else defaults.cpu_limit,
        network=network,
        env=tuple(sorted(env.items())),
        seccomp=seccomp,
        channel=channel,
        fresh=fresh,
        pids_limit=pids_limit,
        options=tuple(sorted(extra.items())),
    )
