"""What a base image is made of, as data, and the name it gets.

A recipe is everything that decides an image's content except the mirror
(the same suite from any mirror is the same image). Its hash is stored as a
label on the image, so a later build can tell that the cached image is still
the one this recipe makes and skip two minutes of debootstrap.

Naming: ``pytest-isolate/<distro>:<suite>``, e.g. ``pytest-isolate/debian:bookworm``.
The repository part says who made it (never confused with a pulled
``debian:bookworm``) and the tag is the suite, which fixes the Python version
(bookworm: 3.11, trixie: 3.13). Users may name the flavour either way:
``debian:bookworm`` or the full tag. An image of another architecture than
the machine's says so in its tag: ``pytest-isolate/debian:bookworm-arm64``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from pytest_isolate.arches import Arch, UnknownArchError, arch_named, host_arch

IMAGE_REPOSITORY_PREFIX = "pytest-isolate/"
LABEL_RECIPE = "org.pytest-isolate.recipe"
LABEL_SUITE = "org.pytest-isolate.suite"
LABEL_PYTHON = "org.pytest-isolate.python"
LABEL_BUILDER = "org.pytest-isolate.builder"
LABEL_ARCH = "org.pytest-isolate.arch"

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
    #: Debian's name of a foreign architecture; None for the machine's own
    foreign_arch: str | None = None

    @property
    def repository(self) -> str:
        return f"{IMAGE_REPOSITORY_PREFIX}{self.distro}"

    @property
    def tag_suffix(self) -> str:
        """``bookworm`` or ``bookworm-arm64``: the tag names a foreign architecture."""
        return self.suite if self.foreign_arch is None else f"{self.suite}-{self.foreign_arch}"

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.tag_suffix}"

    @property
    def arch(self) -> Arch:
        return host_arch() if self.foreign_arch is None else arch_named(self.foreign_arch)

    @property
    def build_command(self) -> str:
        """The command that builds this image, for messages that say how to get it."""
        arch = "" if self.foreign_arch is None else f" --arch {self.foreign_arch}"
        return f"python -m pytest_isolate image build {self.distro}:{self.suite}{arch}"

    def digest(self) -> str:
        """A short, stable hash of every field (the cache key).

        The machine's own architecture is left out, so an image built before
        architectures were named keeps its key.
        """
        fields = asdict(self)
        if fields["foreign_arch"] is None:
            del fields["foreign_arch"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def recipe_for(flavour: str, arch: str | None = None) -> ImageRecipe:
    """The recipe for ``debian:bookworm``, ``pytest-isolate/debian:trixie``, ...

    ``arch`` (Debian's name, or Docker's) picks another architecture than the
    machine's; a tag that already names one (``debian:bookworm-arm64``) does too.
    """
    name = flavour
    if name.startswith(IMAGE_REPOSITORY_PREFIX):
        name = name[len(IMAGE_REPOSITORY_PREFIX) :]
    distro, sep, suite = name.partition(":")
    suite, dash, tagged_arch = suite.partition("-")
    choices = ", ".join(f"debian:{s}" for s in KNOWN_SUITES)
    if distro != "debian" or not sep or suite not in KNOWN_SUITES:
        raise UnknownFlavourError(
            f"pytest-isolate: cannot build image {flavour!r}; known flavours: {choices} "
            "(add --arch ARCH for another architecture)"
        )
    try:
        wanted = arch_named(arch or tagged_arch) if (arch or dash) else host_arch()
        named = arch_named(tagged_arch) if dash else wanted
    except UnknownArchError as exc:
        raise UnknownFlavourError(
            f"pytest-isolate: cannot build image {flavour!r}: {exc}"
        ) from None
    if named != wanted:
        raise UnknownFlavourError(
            f"pytest-isolate: image {flavour!r} names architecture {tagged_arch}, "
            f"but --arch says {arch}"
        )
    if suite not in wanted.suites:
        raise UnknownFlavourError(
            f"pytest-isolate: Debian {suite} has no {wanted.debian} port; "
            f"it has one in: {', '.join(wanted.suites)}"
        )
    foreign = None if wanted == host_arch() else wanted.debian
    return ImageRecipe(distro=distro, suite=suite, foreign_arch=foreign)


def image_tag(image: str, arch: Arch) -> str:
    """The tag of ``image`` in ``arch``: a builder image's tag gains the architecture's suffix.

    ``pytest-isolate/debian:bookworm`` in arm64 is ``pytest-isolate/debian:bookworm-arm64``.
    Any other image is the user's to name and is left as written.
    """
    if not image.startswith(IMAGE_REPOSITORY_PREFIX) or arch == host_arch():
        return image
    try:
        return recipe_for(image, arch.debian).tag
    except UnknownFlavourError:
        return image


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
        LABEL_ARCH: recipe.arch.debian,
    }
