"""Finding the Debian mirror in apt's configuration (pure parsing, table-tested)."""

from __future__ import annotations

import pytest

from pytest_isolate.images.apt_sources import (
    AptSource,
    NoDebianMirrorError,
    choose_debian_mirror,
    machine_debian_mirror,
    parse_deb822_sources,
    parse_one_line_sources,
)

DEB822_THIS_MACHINE = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "deb http://ftp.de.debian.org/debian bookworm main contrib",
            [AptSource("http://ftp.de.debian.org/debian", ("bookworm",), ("main", "contrib"))],
        ),
        (
            "deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main",
            [AptSource("http://m/debian", ("bookworm",), ("main",))],
        ),
        ("deb [trusted=yes] file:/srv/mirror ./", [AptSource("file:/srv/mirror", ("./",), ())]),
        ("deb-src http://m/debian bookworm main", []),
        ("# deb http://m/debian bookworm main", []),
        (
            "deb http://m/debian bookworm main # trailing comment",
            [AptSource("http://m/debian", ("bookworm",), ("main",))],
        ),
    ],
)
def test_one_line_format_yields_deb_entries_only(line: str, expected: list[AptSource]) -> None:
    assert parse_one_line_sources(line) == expected


def test_deb822_stanzas_become_one_source_per_uri() -> None:
    text = (
        "Types: deb deb-src\nURIs: http://a/debian http://b/debian\n"
        "Suites: trixie\nComponents: main\n"
    )
    assert parse_deb822_sources(text) == [
        AptSource("http://a/debian", ("trixie",), ("main",)),
        AptSource("http://b/debian", ("trixie",), ("main",)),
    ]


def test_deb822_disabled_and_source_only_stanzas_are_ignored() -> None:
    text = (
        "Types: deb\nURIs: http://off/debian\nSuites: bookworm\nEnabled: no\n\n"
        "Types: deb-src\nURIs: http://src/debian\nSuites: bookworm\n"
    )
    assert parse_deb822_sources(text) == []


def test_deb822_continuation_lines_extend_a_field() -> None:
    text = (
        "Types: deb\nURIs: http://a/debian\nSuites: bookworm\n"
        "  bookworm-updates\nComponents: main\n"
    )
    assert parse_deb822_sources(text)[0].suites == ("bookworm", "bookworm-updates")


@pytest.mark.parametrize(
    ("sources", "mirror"),
    [
        (parse_deb822_sources(DEB822_THIS_MACHINE), "http://deb.debian.org/debian"),
        (
            [
                AptSource(
                    "http://deb.debian.org/debian-security", ("bookworm-security",), ("main",)
                ),
                AptSource("https://packages.cloud.google.com/apt", ("cloud-sdk",), ("main",)),
                AptSource("http://mirror.local/debian/", ("bookworm",), ("main",)),
            ],
            "http://mirror.local/debian",
        ),
        (
            [AptSource("http://proxy:3142/deb.debian.org", ("bookworm",), ("main",))],
            "http://proxy:3142/deb.debian.org",
        ),
    ],
)
def test_the_main_archive_is_chosen_over_security_and_third_party(
    sources: list[AptSource], mirror: str
) -> None:
    assert choose_debian_mirror(sources) == mirror


def test_no_debian_archive_asks_for_an_explicit_mirror() -> None:
    security_only = [AptSource("http://deb.debian.org/debian-security", ("bookworm-security",), ())]
    with pytest.raises(NoDebianMirrorError, match="--mirror"):
        choose_debian_mirror(security_only)


def test_this_machine_has_a_debian_mirror() -> None:
    assert machine_debian_mirror().startswith(("http://", "https://", "file:/"))
