"""Hypothesis's example database inside a target: read the host's, send back what changed.

Hypothesis keeps the failing examples it finds under its home directory
(``.hypothesis/examples`` in the working directory), replays them first on
the next run, and falls back to an in-memory database, with a warning, when
that directory is not writable. In most targets it is not (a read-only
project, seccomp's dropped user), and a target must never write the host's
files anyway. So, for a hypothesis test only, the target points hypothesis's
home at a private copy in its scratch space that holds the host's examples,
runs the test against it, and sends what the test added or removed as
``examples`` frames (``wire.example_frames``); the broker writes them where
hypothesis looks (``integrations.hypothesis``).

Only the default database moves: a database named in a settings profile is
used as configured, and must be reachable from inside the target.

Costs nothing for other tests: hypothesis is never imported here.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_isolate.wire.example_frames import (
    MAX_CHANGES_PER_TEST,
    MAX_EXAMPLE_BYTES,
    example_frame,
)

#: Hypothesis's directory database names a test's directory and each example file
#: with 16 hex digits; anything else in the directory is not an example.
_NAME = re.compile(r"[0-9a-f]{16}")
_EXAMPLES = "examples"


def _listing(root: Path) -> frozenset[tuple[str, str]]:
    """The (test directory, example file) names under ``root``, examples only."""
    found: set[tuple[str, str]] = set()
    with contextlib.suppress(OSError):
        for key in os.listdir(root):
            if not _NAME.fullmatch(key) or not (root / key).is_dir():
                continue
            with contextlib.suppress(OSError):
                found.update(
                    (key, name) for name in os.listdir(root / key) if _NAME.fullmatch(name)
                )
    return frozenset(found)


def _read(source: Path) -> dict[tuple[str, str], bytes]:
    """The examples under ``source`` (hypothesis's examples directory), by name."""
    found: dict[tuple[str, str], bytes] = {}
    for key, name in _listing(source):
        path = source / key / name
        try:
            if path.stat().st_size <= MAX_EXAMPLE_BYTES:
                found[key, name] = path.read_bytes()
        except OSError:
            continue
    return found


def reads_examples(item: Any) -> bool:
    """Is ``item`` a hypothesis test, whose target gets the examples read before its fork?"""
    if "hypothesis" not in sys.modules:
        return False
    import hypothesis

    return bool(hypothesis.is_hypothesis_test(getattr(item, "obj", None)))


def _source() -> Path:
    from hypothesis import configuration

    return Path(configuration.storage_directory(_EXAMPLES, intent_to_write=False).path)


#: The host's examples, read before the fork for the test named here: a restricted
#: target may not see the project at all (chroot's view, seccomp's dropped user).
_READ_BEFORE_FORK: dict[str, dict[tuple[str, str], bytes]] = {}


def read_before_fork(item: Any) -> None:
    """In the process that forks: read the examples a hypothesis test's target will get."""
    _READ_BEFORE_FORK.clear()
    if reads_examples(item):
        _READ_BEFORE_FORK[item.nodeid] = _read(_source())


def _forget_resolved_databases(item: Any) -> None:
    """Make the test's settings look up the default database again, now in the copy.

    A settings object that inherits the default database resolves it once
    and keeps it; the broker (or the agent) may have done so before the fork,
    pointing it at the host's directory. Hypothesis has no public way to ask
    again, so the cached value is cleared along the test's settings chain;
    with a hypothesis that keeps it elsewhere this does nothing, and the
    target uses the host's directory as it can (read-only, as before).
    """
    from hypothesis import settings

    chain = [getattr(item.obj, "_hypothesis_internal_use_settings", None), settings.default]
    seen: set[int] = set()
    for start in chain:
        current = start
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if hasattr(current, "_cached_database"):
                object.__setattr__(current, "_cached_database", None)
            current = getattr(current, "_fallback", None)


@dataclass(frozen=True)
class ExampleDatabaseCopy:
    """The target's copy of hypothesis's default database, and what it held at the start."""

    root: Path
    before: frozenset[tuple[str, str]]

    @classmethod
    def begin(cls, item: Any) -> ExampleDatabaseCopy | None:
        """Give a hypothesis test its copy of the examples; None for any other test."""
        if not reads_examples(item):
            return None
        from hypothesis import configuration

        host = _READ_BEFORE_FORK.get(item.nodeid)
        if host is None:
            host = _read(_source())
        home = Path(tempfile.mkdtemp(prefix="hypothesis-home-"))  # in the target's scratch
        copy = home / _EXAMPLES
        for key, name in host:
            (copy / key).mkdir(parents=True, exist_ok=True)
            (copy / key / name).write_bytes(host[key, name])
        copy.mkdir(exist_ok=True)
        configuration.set_hypothesis_home_dir(home)
        _forget_resolved_databases(item)
        return cls(copy, frozenset(host))

    def frames(self) -> Iterator[dict[str, Any]]:
        """The changes the test made, as frames (as many as the broker takes from one test)."""
        return itertools.islice(self._changes(), MAX_CHANGES_PER_TEST)

    def _changes(self) -> Iterator[dict[str, Any]]:
        after = _listing(self.root)
        for key, name in sorted(after - self.before):
            try:
                value = (self.root / key / name).read_bytes()
            except OSError:
                continue
            if len(value) <= MAX_EXAMPLE_BYTES:
                yield example_frame(key, name, value)
        for key, name in sorted(self.before - after):
            yield example_frame(key, name, None)
