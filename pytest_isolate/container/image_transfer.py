"""Give an engine of the pool an image it lacks: ``docker save`` here, ``docker load`` there.

Images are built on this machine (``python -m pytest_isolate image build``),
so an engine elsewhere may not have them. The image's archive streams from
the local engine into the other one, chunk by chunk, without a file between.
It is checked by digest: the loaded image must have the ID the local one has
(an image's ID is the digest of its configuration, kept by save and load),
so a tag that means something else there is never taken for ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pytest_isolate.container.engine import Engine


class ImageTransferError(RuntimeError):
    """The image could not be copied; the message names both engines and why."""


def image_id(engine: Engine, image: str) -> str | None:
    """The image's ID (``sha256:...``) on ``engine``, or None if it lacks it."""
    import docker.errors

    try:
        return str(engine.api.inspect_image(image)["Id"])
    except docker.errors.ImageNotFound:
        return None


def copy_image(source: Engine, target: Engine, image: str, say: Callable[[str], None]) -> float:
    """Load ``image`` from ``source`` into ``target``; seconds it took. ``say`` shows progress."""
    import docker.errors

    try:
        facts = source.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        raise ImageTransferError(f"{source.url} does not have it either") from None
    wanted = str(facts["Id"])
    size = int(facts.get("Size") or 0)
    say(f"loading image {image} ({size / 1e6:.0f} MB) from {source.url} into {target.url}")
    started = time.monotonic()
    try:
        target.api.load_image(source.api.get_image(image, chunk_size=1 << 20), quiet=True)
    except docker.errors.APIError as exc:
        raise ImageTransferError(f"loading it into {target.url} failed: {exc}") from None
    got = image_id(target, image)
    if got != wanted:
        raise ImageTransferError(
            f"after loading, {image} on {target.url} is {got}, not {wanted} as on {source.url}"
        )
    seconds = time.monotonic() - started
    say(f"image {image} loaded into {target.url} in {seconds:.1f} s ({wanted[:19]})")
    return seconds
