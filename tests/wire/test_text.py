"""Text from targets is printed without terminal control and within size."""

from __future__ import annotations

import pytest

from pytest_isolate.wire.text import neutralise, neutralise_data, neutralise_name


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J", "\\x1b[2J"),
        ("ok\rFAKE", "ok\\x0dFAKE"),
        ("\x9b31m", "\\x9b31m"),
        ("abc\u202edef", "abc\\u202edef"),
        ("line one\nline\ttwo", "line one\nline\ttwo"),
        ("déjà vu ✓", "déjà vu ✓"),
    ],
)
def test_control_characters_become_visible_escapes(raw: str, shown: str) -> None:
    assert neutralise(raw) == shown


def test_in_names_newlines_and_tabs_are_escaped_too() -> None:
    assert neutralise_name("test_x\nPASSED test_y\t") == "test_x\\x0aPASSED test_y\\x09"


def test_long_text_keeps_its_end_and_says_how_much_was_cut() -> None:
    text = "a" * 100 + "END"
    cut = neutralise(text, limit=10)
    assert cut.endswith("aaaaaaaEND")
    assert cut.startswith("[pytest-isolate: 93 characters cut]")


def test_long_names_are_cut() -> None:
    assert neutralise_name("x" * 50, limit=10) == "x" * 10 + "..."


def test_every_string_of_a_report_is_neutralised() -> None:
    report = {"longrepr": {"entries": ["\x1b[2J"]}, "sections": [("out", "\x07")], "n": 3}
    assert neutralise_data(report) == {
        "longrepr": {"entries": ["\\x1b[2J"]},
        "sections": [("out", "\\x07")],
        "n": 3,
    }


def test_keys_of_report_mappings_are_neutralised_too() -> None:
    assert neutralise_data({"keywords": {"\x1b[2J": 1}}) == {"keywords": {"\\x1b[2J": 1}}
