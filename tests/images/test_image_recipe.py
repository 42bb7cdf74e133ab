"""Image recipes, names and labels (pure)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pytest_isolate.arches import ARCHES
from pytest_isolate.images.archive import image_config
from pytest_isolate.images.recipe import (
    LABEL_PYTHON,
    LABEL_RECIPE,
    ImageRecipe,
    UnknownFlavourError,
    image_labels,
    python_version_from_link,
    recipe_for,
)


@pytest.mark.parametrize(
    ("flavour", "tag"),
    [
        ("debian:bookworm", "pytest-isolate/debian:bookworm"),
        ("pytest-isolate/debian:trixie", "pytest-isolate/debian:trixie"),
        ("debian:bookworm-arm64", "pytest-isolate/debian:bookworm-arm64"),
        ("debian:bookworm-aarch64", "pytest-isolate/debian:bookworm-arm64"),
        ("debian:bookworm-amd64", "pytest-isolate/debian:bookworm"),
    ],
)
def test_flavours_are_named_by_either_spelling(flavour: str, tag: str) -> None:
    assert recipe_for(flavour).tag == tag


@pytest.mark.parametrize("flavour", ["debian:sid", "ubuntu:noble", "bookworm", "debian"])
def test_unknown_flavours_are_refused_with_the_choices(flavour: str) -> None:
    with pytest.raises(UnknownFlavourError, match=r"debian:bookworm, debian:trixie"):
        recipe_for(flavour)


def test_recipe_digest_is_stable_and_short() -> None:
    assert recipe_for("debian:bookworm").digest() == recipe_for("debian:bookworm").digest()
    assert len(recipe_for("debian:bookworm").digest()) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"suite": "trixie"},
        {"include": ("python3", "python3-venv")},
        {"slim": ()},
        {"builder_revision": 999},
    ],
)
def test_any_recipe_change_changes_the_digest(change: dict[str, object]) -> None:
    base = recipe_for("debian:bookworm")
    assert dataclasses.replace(base, **change).digest() != base.digest()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("link", "version"),
    [
        ("python3.11", "3.11"),
        ("/usr/bin/python3.13", "3.13"),
        ("python3", None),
        ("python3.x", None),
        ("pypy3", None),
    ],
)
def test_python_version_is_read_from_the_python3_link(link: str, version: str | None) -> None:
    assert python_version_from_link(link) == version


def test_labels_carry_the_recipe_digest_as_cache_key() -> None:
    recipe = ImageRecipe(distro="debian", suite="bookworm")
    labels = image_labels(recipe, "3.11")
    assert labels[LABEL_RECIPE] == recipe.digest()
    assert labels[LABEL_PYTHON] == "3.11"


def test_a_foreign_architecture_is_named_in_the_tag_and_changes_the_digest() -> None:
    native = recipe_for("debian:bookworm")
    arm64 = recipe_for("debian:bookworm", "arm64")
    assert arm64.tag == "pytest-isolate/debian:bookworm-arm64"
    assert arm64.arch.docker_platform == "linux/arm64"
    assert arm64.digest() != native.digest()
    assert recipe_for("debian:bookworm", "amd64") == native  # the machine's own: no suffix


def test_the_native_digest_is_unchanged_by_the_architecture_field() -> None:
    """Images built before architectures were named keep their cache key."""
    assert ImageRecipe(distro="debian", suite="bookworm").digest() == "26439610a6e6bc35"


@pytest.mark.parametrize(
    ("flavour", "arch", "words"),
    [
        ("debian:bookworm", "sparc", "unknown architecture 'sparc'; known: amd64, i386, arm64"),
        (
            "debian:bookworm",
            "riscv64",
            "Debian bookworm has no riscv64 port; it has one in: trixie",
        ),
        ("debian:bookworm-arm64", "i386", "names architecture arm64, but --arch says i386"),
    ],
)
def test_an_architecture_that_cannot_be_built_is_refused_in_words(
    flavour: str, arch: str, words: str
) -> None:
    with pytest.raises(UnknownFlavourError, match=re.escape(words)):
        recipe_for(flavour, arch)


def test_the_image_config_names_the_platform_for_docker_load() -> None:
    config = image_config(ARCHES["armhf"], {"a.b": "x y"}, "sha256:00")
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm", "v7")
    assert config["config"]["Labels"] == {"a.b": "x y"}
    assert config["config"]["Cmd"] == ["/usr/bin/python3"]
    assert "LANG=C.UTF-8" in config["config"]["Env"]
    assert config["rootfs"]["diff_ids"] == ["sha256:00"]
