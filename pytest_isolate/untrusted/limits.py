"""Per-test options in untrusted mode: marks may tighten the run's limits, never loosen them.

The run's limits come from the trusted command line (``--isolate-timeout``,
``--isolate-mem-limit``, ``--isolate-cpu-limit``, ``--isolate-untrusted-env``)
or from this mode's defaults. A test's ``isolate(...)`` mark, read from the
agent's data, may ask for a shorter timeout, less memory or CPU, and extra
environment variables (the project's own values for its own tests). Anything
that would widen what the target can reach (``network=True``,
``read_only=False``, another ``user``, ``mounts``, another ``image``,
``dockerfile``, a higher ``pids_limit``) or change the target (``fresh``,
another backend, ``seccomp``) is ignored and named in the run's summary,
unless the trusted command line allows it (``--isolate-untrusted-allow``:
``network``, ``limits``). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_isolate.spec import IsolateSpec, SpecError, parse_seconds, parse_size
from pytest_isolate.wire.item_data import MarkData

#: A test of a stranger's project that runs longer than this is stopped.
DEFAULT_TIMEOUT = 300.0
MAX_ENV_ENTRIES = 100
MAX_ENV_VALUE = 16 * 1024

_HARMLESS = {"network": False, "read_only": True, "fresh": False}

#: What the trusted command line may let marks loosen (``--isolate-untrusted-allow``).
ALLOWABLE = {
    "network": "a test marked network=True runs in a second container that has a network",
    "limits": "a mark's timeout, mem_limit and cpu_limit replace the run's, even when higher",
}


@dataclass(frozen=True)
class Ceiling:
    """The run's limits, from the trusted command line."""

    backend: str
    timeout: float = DEFAULT_TIMEOUT
    mem_limit: int | None = None
    cpu_limit: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    allow: frozenset[str] = frozenset()


@dataclass(frozen=True)
class GrantedOptions:
    """What one test gets, and which of its mark's wishes were not granted."""

    spec: IsolateSpec
    ignored: tuple[str, ...] = ()


def _lower(mine: float | None, wish: float | None, any_value: bool = False) -> float | None:
    if wish is None:
        return mine
    return wish if mine is None or any_value else min(mine, wish)


def _mark_env(value: object, ignored: list[str]) -> dict[str, str]:
    pairs = value if isinstance(value, tuple) else ()
    env: dict[str, str] = {}
    for pair in pairs[:MAX_ENV_ENTRIES]:
        if (
            isinstance(pair, tuple)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
            and pair[0]
            and "=" not in pair[0]
            and len(pair[1]) <= MAX_ENV_VALUE
        ):
            env[pair[0]] = pair[1]
        else:
            ignored.append("env: an entry that is not NAME: 'text'")
    return env


def options_for(marks: Sequence[MarkData], ceiling: Ceiling) -> GrantedOptions:
    """The spec one test runs with: its closest ``isolate`` mark applied under ``ceiling``."""
    mark = next((m for m in marks if m.name == "isolate"), None)
    ignored: list[str] = []
    timeout: float | None = ceiling.timeout
    mem_limit: float | None = ceiling.mem_limit
    cpu_limit: float | None = ceiling.cpu_limit
    env = dict(ceiling.env)
    network = False
    free = "limits" in ceiling.allow
    if mark is not None:
        backend = mark.args[0] if mark.args else mark.kwarg("backend", ceiling.backend)
        if backend != ceiling.backend:
            ignored.append(f"backend {str(backend)[:40]!r}: runs in {ceiling.backend!r}")
        for key, value in mark.kwargs:
            try:
                if key == "timeout":
                    timeout = _lower(timeout, parse_seconds(value, key), free)
                elif key == "mem_limit":
                    mem_limit = _lower(mem_limit, parse_size(value, key), free)
                elif key == "cpu_limit":
                    cpu_limit = _lower(cpu_limit, parse_seconds(value, key), free)
                elif key == "network" and value is True and "network" in ceiling.allow:
                    network = True
                elif key == "env":
                    env.update({k: v for k, v in _mark_env(value, ignored).items() if k not in env})
                elif key != "backend" and _HARMLESS.get(key, object()) != value:
                    ignored.append(f"{key}={str(value)[:60]}")
            except SpecError as exc:
                ignored.append(str(exc)[:200])
    spec = IsolateSpec(
        backend=ceiling.backend,
        timeout=timeout,
        mem_limit=None if mem_limit is None else int(mem_limit),
        cpu_limit=cpu_limit,
        network=network,
        env=tuple(sorted(env.items())),
    )
    return GrantedOptions(spec, tuple(ignored))


def parse_allow(text: str | None) -> frozenset[str]:
    """``--isolate-untrusted-allow=network,limits`` -> the names; unknown ones are usage errors."""
    names = frozenset(filter(None, (part.strip() for part in (text or "").split(","))))
    unknown = sorted(names - set(ALLOWABLE))
    if unknown:
        raise SpecError(
            f"--isolate-untrusted-allow: unknown {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(ALLOWABLE))}"
        )
    return names


def parse_passed_env(
    entries: Sequence[str], environ: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """``--isolate-untrusted-env NAME`` copies NAME from the broker; ``NAME=VALUE`` sets it.

    The only way a broker value reaches a target: named, one by one, by the
    trusted command line. A NAME the broker does not have is a usage error.
    """
    env: dict[str, str] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if not name or not name.replace("_", "a").isalnum():
            raise SpecError(f"--isolate-untrusted-env={entry!r}: NAME must be letters, digits, _")
        if not sep:
            if name not in environ:
                raise SpecError(f"--isolate-untrusted-env={name}: not set in this environment")
            value = environ[name]
        env[name] = value
    return tuple(sorted(env.items()))
