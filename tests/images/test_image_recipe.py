"""Image recipes, names and labels (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_isolate.images.recipe import (
    LABEL_PYTHON,
    LABEL_RECIPE,
    ImageRecipe,
    UnknownFlavourError,
    image_labels,
    import_changes,
    python_version_from_link,
    recipe_for,
)


@pytest.mark.parametrize(
    ("flavour", "tag"),
    [
        ("debian:bookworm", "pytest-isolate/debian:bookworm"),
        ("pytest-isolate/debian:trixie", "pytest-isolate/debian:trixie"),
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


def test_import_changes_quote_label_values() -> None:
    changes = import_changes({"a.b": "x y"})
    assert 'LABEL a.b="x y"' in changes
    assert 'CMD ["/usr/bin/python3"]' in changes
