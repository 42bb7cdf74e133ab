"""The API a third-party backend uses is ``pytest_isolate``'s ``__all__``, and only that."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_isolate

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", pytest_isolate.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(pytest_isolate, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        pytest_isolate.Nothing  # noqa: B018


def test_importing_the_package_loads_none_of_the_broker() -> None:
    """A test module that only marks tests, and an agent in a target, import the package."""
    code = (
        "import sys, pytest_isolate; "
        "print(sorted(m for m in sys.modules if m.startswith('pytest_isolate')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "['pytest_isolate', 'pytest_isolate._version']"


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_writing_a_backend_uses_only_the_public_api() -> None:
    text = (DOCS / "writing-a-backend.md").read_text()
    deep = [
        line.strip()
        for block in _code_blocks(text)
        for line in block.splitlines()
        if re.match(r"\s*(from|import) pytest_isolate\.", line)
    ]
    assert deep == []
    named = set(re.findall(r"`pytest_isolate\.(\w+)", text))
    assert named <= set(pytest_isolate.__all__), named - set(pytest_isolate.__all__)


def test_all_lists_exactly_the_lazy_names() -> None:
    assert set(pytest_isolate.__all__) == {"__version__", "isolate", *pytest_isolate._API}
