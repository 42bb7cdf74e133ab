"""Offline base images: debootstrap a Debian suite, slim it, import it.

No registry is reachable where we run, so images are built from the Debian
mirror apt already uses. Tags: ``pytest-isolate/debian:<suite>``
(``bookworm`` has Python 3.11, ``trixie`` Python 3.13). Command line:
``python -m pytest_isolate image build debian:bookworm`` and ``image list``.
"""

from __future__ import annotations

from pytest_isolate.images.apt_sources import (
    AptSource,
    NoDebianMirrorError,
    choose_debian_mirror,
    machine_debian_mirror,
)
from pytest_isolate.images.build import (
    BuiltImage,
    ImageBuildError,
    build_image,
    find_cached_image,
    list_images,
)
from pytest_isolate.images.recipe import KNOWN_SUITES, ImageRecipe, recipe_for

__all__ = [
    "KNOWN_SUITES",
    "AptSource",
    "BuiltImage",
    "ImageBuildError",
    "ImageRecipe",
    "NoDebianMirrorError",
    "build_image",
    "choose_debian_mirror",
    "find_cached_image",
    "list_images",
    "machine_debian_mirror",
    "recipe_for",
]
