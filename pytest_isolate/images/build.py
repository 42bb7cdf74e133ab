"""Build a base image without a registry: debootstrap, slim, import.

The thin, imperative half of the image builder (the recipe is data in
:mod:`pytest_isolate.images.recipe`). Every build happens in a fresh
temporary directory that is removed whatever happens, including Ctrl-C.

debootstrap runs in its own mount and PID namespaces (``unshare``): the
``/proc`` and ``/sys`` it mounts inside the new root then vanish with it, so
an interrupted build can never leave a host mount behind, nor can removing
the work directory descend into a live ``/proc``. It also dies with us
(parent-death signal), taking its whole PID namespace along.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pytest_isolate.arches import binfmt_fix, binfmt_state
from pytest_isolate.container.engine import Engine
from pytest_isolate.images.apt_sources import machine_debian_mirror
from pytest_isolate.images.archive import ArchiveError, load_archive, write_archive
from pytest_isolate.images.recipe import (
    LABEL_PYTHON,
    LABEL_RECIPE,
    ImageRecipe,
    image_labels,
    python_version_from_link,
)
from pytest_isolate.target.steps import set_parent_death_signal

Progress = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the step and its output tail."""


@dataclass(frozen=True)
class BuiltImage:
    """The outcome of :func:`build_image`."""

    tag: str
    image_id: str
    recipe_digest: str
    python_version: str
    size_bytes: int
    cached: bool


def find_cached_image(engine: Engine, recipe: ImageRecipe) -> BuiltImage | None:
    """The image tagged for ``recipe`` if its recipe label still matches."""
    import docker.errors

    try:
        image = engine.client.images.get(recipe.tag)
    except docker.errors.ImageNotFound:
        return None
    labels = image.labels or {}
    if labels.get(LABEL_RECIPE) != recipe.digest():
        return None
    return BuiltImage(
        tag=recipe.tag,
        image_id=image.id,
        recipe_digest=recipe.digest(),
        python_version=labels.get(LABEL_PYTHON, "?"),
        size_bytes=int(image.attrs.get("Size", 0)),
        cached=True,
    )


def build_image(
    engine: Engine,
    recipe: ImageRecipe,
    *,
    mirror: str | None = None,
    force: bool = False,
    progress: Progress = print,
    work_parent: str | None = None,
) -> BuiltImage:
    """Build ``recipe`` into ``engine`` unless an up-to-date image is there."""
    if not force:
        cached = find_cached_image(engine, recipe)
        if cached is not None:
            progress(f"{recipe.tag}: up to date (recipe {cached.recipe_digest}), nothing to do")
            return cached
    missing = binfmt_state(recipe.arch)
    if missing is not None:  # debootstrap runs the new root's programs
        raise ImageBuildError(
            f"pytest-isolate: cannot build {recipe.tag}: {missing}; fix: {binfmt_fix(recipe.arch)}"
        )
    mirror = mirror or machine_debian_mirror()
    with _work_directory(work_parent) as work:
        root = os.path.join(work, "root")
        with _step(progress, f"debootstrap {recipe.suite} ({recipe.arch.debian}) from {mirror}"):
            _debootstrap(recipe, root, mirror)
        with _step(progress, "slim (apt caches, docs, man pages, locales)"):
            removed = slim_root(root, recipe.slim)
        progress(f"  removed {removed / 1e6:.0f} MB")
        python_version = _python_version_in(root)
        labels = image_labels(recipe, python_version)
        with _step(progress, f"load as {recipe.tag} ({recipe.arch.docker_platform})"):
            archive = os.path.join(work, "archive")
            os.mkdir(archive)
            try:
                image_id = write_archive(root, archive, recipe.tag, recipe.arch, labels)
                shutil.rmtree(root)  # the layer holds it now: half the disk
                replaced = _tagged_image_id(engine, recipe.tag)
                load_archive(engine.api, archive)
            except ArchiveError as exc:
                raise ImageBuildError(str(exc)) from None
            if replaced not in (None, image_id):  # the old build lost its tag: not kept
                import docker.errors

                with contextlib.suppress(docker.errors.APIError):  # a container still uses it
                    engine.client.images.remove(replaced)
    image = engine.client.images.get(image_id)
    built = BuiltImage(
        tag=recipe.tag,
        image_id=image_id,
        recipe_digest=recipe.digest(),
        python_version=python_version,
        size_bytes=int(image.attrs.get("Size", 0)),
        cached=False,
    )
    progress(
        f"{built.tag}: Python {python_version}, {built.size_bytes / 1e6:.0f} MB, {image_id[:19]}"
    )
    return built


def _tagged_image_id(engine: Engine, tag: str) -> str | None:
    import docker.errors

    try:
        return str(engine.client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


@contextmanager
def _step(progress: Progress, what: str) -> Iterator[None]:
    progress(f"{what} ...")
    started = time.monotonic()
    yield
    progress(f"  done in {time.monotonic() - started:.1f} s")


@contextmanager
def _work_directory(parent: str | None) -> Iterator[str]:
    """A temporary directory removed on any exit; SIGTERM is turned into an exception."""
    work = tempfile.mkdtemp(prefix="pytest-isolate-image-", dir=parent)
    previous = signal.getsignal(signal.SIGTERM)

    def _terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    installed = _try_install_handler(signal.SIGTERM, _terminate)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if installed:
            signal.signal(signal.SIGTERM, previous)


def _try_install_handler(signum: int, handler: Callable[[int, Any], None]) -> bool:
    try:
        signal.signal(signum, handler)
    except ValueError:  # not the main thread: leave signals alone
        return False
    return True


def _debootstrap(recipe: ImageRecipe, root: str, mirror: str) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "pytest-isolate: debootstrap is not installed; "
            "install it: sudo apt-get install debootstrap"
        )
    command = [
        "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
        "debootstrap", f"--variant={recipe.variant}", f"--include={','.join(recipe.include)}",
        f"--arch={recipe.arch.debian}", recipe.suite, root, mirror,
    ]  # fmt: skip
    parent = os.getpid()
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: set_parent_death_signal(parent),
        check=False,
    )
    if result.returncode != 0:
        tail = result.stdout.decode(errors="replace").splitlines()[-15:]
        log = os.path.join(root, "debootstrap", "debootstrap.log")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                tail += f.read().splitlines()[-15:]
        raise ImageBuildError(
            f"pytest-isolate: debootstrap {recipe.suite} failed with status {result.returncode}:\n"
            + "\n".join(tail)
        )


def slim_root(root: str, patterns: tuple[str, ...]) -> int:
    """Remove ``patterns`` under ``root``; return the bytes freed.

    Never follows symlinks out of the root: a symlink matched by a pattern is
    removed itself, and a directory is removed with ``rmtree`` which does not
    follow links.
    """
    freed = 0
    for pattern in patterns:
        for path in glob.glob(os.path.join(root, pattern)):
            if os.path.islink(path) or not os.path.isdir(path):
                freed += os.lstat(path).st_size
                os.unlink(path)
            else:
                freed += _tree_size(path)
                shutil.rmtree(path)
    return freed


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _python_version_in(root: str) -> str:
    link = os.path.join(root, "usr", "bin", "python3")
    version = python_version_from_link(os.readlink(link)) if os.path.islink(link) else None
    if version is None:
        raise ImageBuildError(f"pytest-isolate: no python3 found in the new root ({link})")
    return version


def list_images(engine: Engine) -> list[BuiltImage]:
    """Every image this builder made (those carrying a recipe label)."""
    found: list[BuiltImage] = []
    for image in engine.client.images.list(filters={"label": LABEL_RECIPE}):
        labels = image.labels or {}
        for tag in image.tags or ["<untagged>"]:
            found.append(
                BuiltImage(
                    tag=tag,
                    image_id=image.id,
                    recipe_digest=labels.get(LABEL_RECIPE, "?"),
                    python_version=labels.get(LABEL_PYTHON, "?"),
                    size_bytes=int(image.attrs.get("Size", 0)),
                    cached=True,
                )
            )
    return sorted(found, key=lambda built: built.tag)
