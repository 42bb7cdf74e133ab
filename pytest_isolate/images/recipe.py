"""What a base image is made of, as data, and the name it gets.

A recipe is everything that decides an image's content except the mirror
(the same suite from any mirror is the same image). Its hash is stored as a
label on the image, so a later build can tell that the cached image is still
the one this recipe makes and skip two minutes of debootstrap.

Naming: ``pytest-isolate/<distro>:<suite>``, e.g. ``pytest-isolate/debian:bookworm``.
The repository part says who made it (never confused with a pulled
``debian:bookworm``) and the tag is the suite, which fixes the Python version
(bookworm: 3.11, trixie: 3.13). Users may name the flavour either way:
``debian:bookworm`` or the full tag.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

IMAGE_REPOSITORY_PREFIX = "pytest-isolate/"
LABEL_RECIPE = "org.pytest-isolate.recipe"
LABEL_SUITE = "org.pytest-isolate.suite"
LABEL_PYTHON = "org.pytest-isolate.python"
LABEL_BUILDER = "org.pytest-isolate.builder"

#: Bumped whenever the build steps change in a way the recipe fields miss.
BUILDER_REVISION = 1

#: Paths (relative to the root, shell-glob patterns) removed after debootstrap:
#: package caches and indexes, documentation and translations. None is needed
#: to run Python; together they are more than half of the image.
SLIM_PATTERNS: tuple[str, ...] = (
    "var/cache/apt/*",
    "var/cache/debconf/*-old",
    "var/lib/apt/lists/*",
    "var/log/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/lintian/*",
    "usr/share/common-licenses/*",
)

#: The flavours we know how to build, by suite, with the Python each gives.
KNOWN_SUITES: dict[str, str] = {"bookworm": "3.11", "trixie": "3.13"}


class UnknownFlavourError(ValueError):
    """The requested image is not one this builder makes."""


@dataclass(frozen=True)
class ImageRecipe:
    """The inputs of a base image build."""

    distro: str
    suite: str
    variant: str = "minbase"
    include: tuple[str, ...] = ("python3",)
    slim: tuple[str, ...] = SLIM_PATTERNS
    builder_revision: int = BUILDER_REVISION

    @property
    def repository(self) -> str:
        return f"{IMAGE_REPOSITORY_PREFIX}{self.distro}"

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.suite}"

    def digest(self) -> str:
        """A short, stable hash of every field (the cache key)."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def recipe_for(flavour: str) -> ImageRecipe:
    """The recipe for ``debian:bookworm``, ``pytest-isolate/debian:trixie``, ..."""
    name = flavour
    if name.startswith(IMAGE_REPOSITORY_PREFIX):
        name = name[len(IMAGE_REPOSITORY_PREFIX) :]
    distro, sep, suite = name.partition(":")
    if distro != "debian" or not sep or suite not in KNOWN_SUITES:
        choices = ", ".join(f"debian:{s}" for s in KNOWN_SUITES)
        raise UnknownFlavourError(
            f"pytest-isolate: cannot build image {flavour!r}; known flavours: {choices}"
        )
    return ImageRecipe(distro=distro, suite=suite)


def python_version_from_link(link_target: str) -> str | None:
    """``python3.11`` (the target of ``/usr/bin/python3``) -> ``3.11``."""
    base = link_target.rsplit("/", 1)[-1]
    if not base.startswith("python3."):
        return None
    minor = base[len("python3.") :]
    return f"3.{minor}" if minor.isdigit() else None


def image_labels(recipe: ImageRecipe, python_version: str) -> dict[str, str]:
    """Labels put on the imported image; the recipe hash is the cache key."""
    return {
        LABEL_RECIPE: recipe.digest(),
        LABEL_SUITE: recipe.suite,
        LABEL_PYTHON: python_version,
        LABEL_BUILDER: str(recipe.builder_revision),
    }


def import_changes(labels: dict[str, str]) -> list[str]:
    """Dockerfile instructions applied at import (``docker import --change``).

    JSON-quoted values keep a label with spaces one value.
    """
    changes = [f"LABEL {key}={json.dumps(value)}" for key, value in sorted(labels.items())]
    changes += ["ENV LANG=C.UTF-8", 'CMD ["/usr/bin/python3"]']
    return changes
