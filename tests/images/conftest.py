"""Fixtures for image builder tests: the real local engine and our base images."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_isolate.container.engine import Engine, connect_engine
from pytest_isolate.images.build import BuiltImage, build_image
from pytest_isolate.images.recipe import KNOWN_SUITES, recipe_for


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    with connect_engine() as opened:
        yield opened


@pytest.fixture(scope="session")
def base_images(engine: Engine) -> dict[str, BuiltImage]:
    """Our images by suite, built if missing (about a minute each, cached after)."""
    return {
        suite: build_image(engine, recipe_for(f"debian:{suite}"), progress=lambda _m: None)
        for suite in KNOWN_SUITES
    }
