"""The pure-Python packages a spawned target needs, copied once into a cache directory.

A target image needs only Python 3.9+: pytest, its dependencies and this
package are shown to it read-only and put first on ``PYTHONPATH``. We copy
the packages (not the broker's whole site-packages, which may hold secrets,
other projects, or compiled modules for another Python) into a directory
keyed by what was copied, so a run reuses the copy of an earlier run and an
edit of pytest_isolate makes a new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: Top-level modules injected when the broker has them. pytest's hard
#: dependencies, the backports older Pythons need, and ourselves.
INJECTED_MODULES = (
    "pytest",
    "_pytest",
    "py",
    "pluggy",
    "iniconfig",
    "packaging",
    "pygments",
    "exceptiongroup",
    "tomli",
    "pytest_isolate",
)
#: Distributions whose metadata (``*.dist-info``) goes along: code in the target
#: may ask ``importlib.metadata`` for them, as pluggy's own tests do.
INJECTED_DISTRIBUTIONS = (
    "pytest",
    "pluggy",
    "iniconfig",
    "packaging",
    "pygments",
    "exceptiongroup",
    "tomli",
    "pytest-isolate-sandbox",
)
#: Never copied: caches and compiled code for the broker's Python, except
#: extension modules tagged with their ABI (``tracer.cpython-311-x86_64-linux-gnu.so``,
#: coverage's tracer): only a matching Python loads those, any other falls back
#: to the pure-Python code beside them.
SKIPPED_SUFFIXES = (".pyc", ".so", ".pyd")
ABI_TAGGED = ".cpython-"
SKIPPED_DIRS = ("__pycache__",)
#: A cached copy unused for this long is removed when a new one is made.
STALE_AFTER = 7 * 24 * 3600.0
#: Beside the copies: every module compiled for one, by content (``_compile``).
BYTECODE = ".bytecode"


def module_source(name: str) -> Path | None:
    """The package directory or single-file module of ``name``, or None if absent."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return None
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


def metadata_source(distribution: str) -> Path | None:
    """The ``*.dist-info`` directory of an installed distribution, or None."""
    import importlib.metadata

    try:
        found = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = getattr(found, "_path", None)
    if isinstance(path, Path) and path.is_dir() and path.name.endswith(".dist-info"):
        return path
    return None


def _files(source: Path) -> Iterator[Path]:
    if source.is_file():
        yield source
        return
    for directory, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for filename in sorted(filenames):
            if not filename.endswith(SKIPPED_SUFFIXES) or (
                ABI_TAGGED in filename and filename.endswith(".so")
            ):
                yield Path(directory, filename)


#: Part of every copy's key: a copy made another way is never taken for this one.
SITE_LAYOUT = "compiled: unchecked-hash pycs of the broker's Python, from a store\n"


def content_key(sources: dict[str, Path]) -> str:
    """A digest of every file's path, size and mtime: changes when anything copied changes."""
    digest = hashlib.sha256(SITE_LAYOUT.encode())
    for name, source in sorted(sources.items()):
        for path in _files(source):
            stat = path.stat()
            rel = path.relative_to(source.parent)
            digest.update(f"{name}\0{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "pytest-isolate", "agent-site")


def prune_stale(root: Path, max_age: float = STALE_AFTER) -> None:
    """Remove copies nobody used for ``max_age`` seconds (each edit of the package makes one).

    The bytecode store (``BYTECODE``) is pruned file by file: a compiled
    module is kept while some copy still takes it.
    """
    now = time.time()
    for directory in (root, root / BYTECODE):
        with contextlib.suppress(OSError):
            for entry in directory.iterdir():
                with contextlib.suppress(OSError):
                    if entry.name == BYTECODE or now - entry.stat().st_mtime <= max_age:
                        continue
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()


def _coverage_runs() -> bool:
    """Whether this broker measures coverage: its targets then need coverage too."""
    from pytest_isolate.target.coverage_probe import broker_coverage

    return broker_coverage() is not None


def _compile(site: Path, store: Path) -> None:
    """Byte-compile the copy, for every target whose Python is the broker's version.

    A target cannot write bytecode into the copy (read-only, and
    ``PYTHONDONTWRITEBYTECODE``): without these, every agent compiled pytest,
    pluggy and this package again, most of a container's start. The pycs
    are not checked against their sources (the copy never changes: its
    directory is named by its content); a Python of another version ignores
    them and compiles, as before.

    Each module is compiled once per content, whatever copy it is in:
    ``store`` keeps the pycs by the source's digest (a new copy for a project
    with a plugin of its own compiles that plugin only). A pyc does not
    depend on where its source is: the import system gives the code its
    source's path when it loads it.
    """
    import py_compile

    store.mkdir(parents=True, exist_ok=True)
    tag = importlib.util.MAGIC_NUMBER.hex()
    for directory, _subdirs, names in os.walk(site):
        for name in names:
            if not name.endswith(".py"):
                continue
            source = os.path.join(directory, name)
            with open(source, "rb") as file:
                digest = hashlib.sha256(file.read()).hexdigest()[:40]
            stored = store / f"{digest}-{tag}.pyc"
            if stored.is_file():
                with contextlib.suppress(OSError):
                    os.utime(stored)  # in use: not stale
            else:
                try:  # written atomically: a broker racing this one reads all or nothing
                    py_compile.compile(
                        source,
                        cfile=str(stored),
                        doraise=True,
                        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                    )
                except (py_compile.PyCompileError, OSError):
                    continue  # a module for another Python: the target compiles it
            cached = importlib.util.cache_from_source(source)
            os.makedirs(os.path.dirname(cached), exist_ok=True)
            shutil.copyfile(stored, cached)


def injected_site(
    cache_root: Path | None = None,
    modules: tuple[str, ...] = (),
    distributions: tuple[str, ...] = (),
) -> Path:
    """The directory to put first on the target's ``PYTHONPATH`` (made once, then reused).

    Files are world-readable and the directory world-traversable, since the
    target reads them as an unprivileged uid. ``modules`` and ``distributions``
    add the broker's other plugins (``backends.target_plugins``).
    """
    root = cache_root or default_cache_root()
    wanted = INJECTED_MODULES + modules + (("coverage",) if _coverage_runs() else ())
    sources = {name: path for name in wanted if (path := module_source(name))}
    for distribution in INJECTED_DISTRIBUTIONS + distributions:
        if (metadata := metadata_source(distribution)) is not None:
            sources[f"dist:{distribution}"] = metadata
    final = root / content_key(sources)
    if final.is_dir():
        with contextlib.suppress(OSError):
            os.utime(final)  # in use: not stale
        return final
    prune_stale(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        for source in sources.values():
            for path in _files(source):
                target = staging / path.relative_to(source.parent)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                target.chmod(0o644)
        _compile(staging, root / BYTECODE)
        for directory, _subdirs, names in os.walk(staging):
            os.chmod(directory, 0o755)
            for name in names:
                os.chmod(os.path.join(directory, name), 0o644)
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():  # another broker won the race: theirs is as good
                raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    return final
