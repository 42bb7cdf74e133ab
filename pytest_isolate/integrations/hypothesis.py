"""Hypothesis: failing examples found in a target are saved where hypothesis looks next run.

A target sends what its test changed in hypothesis's example database
(``target.hypothesis_examples``, checked on arrival by
``wire.example_frames``: hex names only, each saved example named by the
hash of its bytes, bounded). The broker writes those changes into the
database a plain run would have used: the ``examples`` directory under
hypothesis's home, laid out as hypothesis's ``DirectoryBasedExampleDatabase``
lays it out (one directory per test, one file per example).

The directory belongs to the project, which untrusted mode does not trust:
a symbolic link there could point a write anywhere. So each level is opened
without following links, and each file is written through its directory's
descriptor, created fresh and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from pytest_isolate.wire.example_frames import ExampleChange

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _examples_home() -> Path | None:
    """Hypothesis's examples directory for this process, created as hypothesis creates it.

    None when hypothesis is not installed in the broker (then no target could
    have loaded it from here either).
    """
    try:
        from hypothesis.configuration import storage_directory
    except ImportError:
        return None
    storage = storage_directory("examples")
    with contextlib.suppress(OSError):
        storage.create_if_missing()  # also writes hypothesis's .gitignore
    return Path(storage.path)


def _open_directory(name: str, parent: int | None, create: bool) -> int:
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent)
    return os.open(name, _DIRECTORY, dir_fd=parent)


def _apply(examples: int, change: ExampleChange) -> None:
    if change.value is None:
        try:
            key = _open_directory(change.key, examples, create=False)
        except FileNotFoundError:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(change.name, dir_fd=key)
        finally:
            os.close(key)
        with contextlib.suppress(OSError):  # the test's last example: its directory goes too
            os.rmdir(change.key, dir_fd=examples)
        return
    key = _open_directory(change.key, examples, create=True)
    try:
        partial = f".{change.name}.pytest-isolate"
        fd = os.open(
            partial,
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=key,
        )
        try:
            os.write(fd, change.value)
        finally:
            os.close(fd)
        os.replace(partial, change.name, src_dir_fd=key, dst_dir_fd=key)
    finally:
        os.close(key)


def save_examples(changes: Sequence[ExampleChange]) -> None:
    """Write one test's checked changes into the broker's hypothesis database.

    A database that cannot be written (or a link where a directory should be)
    loses those examples, as hypothesis itself does when its directory is
    unusable, and the run goes on: a warning says so.
    """
    if not changes:
        return
    home = _examples_home()
    if home is None:
        return
    try:
        examples = os.open(home, _DIRECTORY)
    except OSError as exc:
        _warn(home, exc)
        return
    try:
        for change in changes:
            _apply(examples, change)
    except OSError as exc:
        _warn(home, exc)
    finally:
        os.close(examples)


def _warn(home: Path, exc: OSError) -> None:
    import warnings

    import pytest

    warnings.warn(
        pytest.PytestWarning(
            f"pytest-isolate: hypothesis examples found in a target were not saved in {home}: "
            f"{exc} (the next run will not replay them)"
        ),
        stacklevel=2,
    )
