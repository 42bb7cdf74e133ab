"""``image export FLAVOUR DIR``: unpack a built image into a directory, a root for ``rootfs=``.

``isolate("chroot", rootfs=DIR)`` needs a foreign root file system on disk.
The images this package builds are exactly that, so the cheapest root is an
image's file system: create a container (never started), stream
``docker export`` into ``tar -x`` in a staging directory beside ``DIR``,
then rename it into place, so that a half-written root is never used. An
existing ``DIR`` is kept unless ``force``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from pytest_isolate.container.engine import Engine


class ImageExportError(RuntimeError):
    """The image could not be exported; the message names the fix."""


def export_rootfs(engine: Engine, image: str, directory: Path, *, force: bool = False) -> Path:
    """Unpack ``image``'s file system into ``directory`` (kept when it already exists)."""
    import docker.errors

    directory = directory.absolute()
    if directory.is_dir() and not force:
        return directory
    try:
        engine.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        raise ImageExportError(
            f"image {image!r} is not there; build it: python -m pytest_isolate image build "
            f"{image.removeprefix('pytest-isolate/')}"
        ) from None
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.staging-", dir=directory.parent))
    container = engine.api.create_container(image, command=["true"], network_disabled=True)["Id"]
    try:
        _untar(engine.api.export(container), staging)
        staging.chmod(0o755)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            engine.api.remove_container(container, force=True)
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _untar(chunks: object, destination: Path) -> None:
    """GNU tar keeps owners, modes and device-free layout exactly as the image has them."""
    tar = subprocess.Popen(
        ["tar", "-x", "--numeric-owner", "-p", "-f", "-", "-C", str(destination)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tar.stdin is not None
    try:
        for chunk in chunks:  # type: ignore[attr-defined]
            tar.stdin.write(chunk)
    finally:
        tar.stdin.close()
        error = tar.stderr.read() if tar.stderr is not None else b""
        code = tar.wait()
    if code != 0:
        raise ImageExportError(f"tar failed ({code}): {error.decode(errors='replace')[-2000:]}")
