"""Find a Debian mirror in apt's own configuration.

No registry can be reached from the machines we run on, but apt can reach a
Debian mirror (or a local proxy/snapshot of one). Reading the mirror from
apt's sources means the image builder uses exactly the mirror the machine is
already allowed to use, without a setting of its own. Parsing is pure: the
caller reads the files.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

APT_SOURCES_LIST = "/etc/apt/sources.list"
APT_SOURCES_DIR = "/etc/apt/sources.list.d"


class NoDebianMirrorError(LookupError):
    """apt's sources name no plain Debian archive; pass ``--mirror URL``."""


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` source: where it is and which suites it serves."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Parse the one-line format of ``sources.list``: ``deb [opts] URI SUITE COMP...``."""
    sources: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = _drop_bracketed_options(line.split())
        if len(words) < 3 or words[0] != "deb":
            continue
        sources.append(AptSource(words[1], (words[2],), tuple(words[3:])))
    return sources


def _drop_bracketed_options(words: list[str]) -> list[str]:
    """Remove ``[arch=amd64 signed-by=...]`` which may span several words."""
    kept: list[str] = []
    inside = False
    for word in words:
        if not inside and word.startswith("["):
            inside = not word.endswith("]")
            continue
        if inside:
            inside = not word.endswith("]")
            continue
        kept.append(word)
    return kept


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Parse the deb822 format of ``*.sources``: stanzas of ``Field: value`` lines."""
    sources: list[AptSource] = []
    for stanza in _deb822_stanzas(text):
        if "deb" not in stanza.get("types", "").split():
            continue
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        sources.extend(AptSource(uri, suites, components) for uri in stanza.get("uris", "").split())
    return sources


def _deb822_stanzas(text: str) -> Iterable[dict[str, str]]:
    stanza: dict[str, str] = {}
    last_key = ""
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, last_key = {}, ""
            continue
        if raw[0] in " \t" and last_key:
            stanza[last_key] += " " + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if sep:
            last_key = key.strip().lower()
            stanza[last_key] = value.strip()
    if stanza:
        yield stanza


def choose_debian_mirror(sources: Sequence[AptSource]) -> str:
    """Pick the URI of the main Debian archive among ``sources``.

    The main archive is the one serving a plain release suite (``bookworm``,
    not ``bookworm-security`` nor ``bookworm-updates``) from a URI whose path
    ends in ``debian``: that excludes debian-security and third-party
    repositories (Google, nodesource) that debootstrap cannot use. Failing
    that, any source with a plain suite and a ``main`` component.
    """

    def plain_suite(source: AptSource) -> bool:
        return any("-" not in suite and "/" not in suite for suite in source.suites)

    candidates = [s for s in sources if s.uri.startswith(("http://", "https://", "file:/"))]
    for source in candidates:
        if plain_suite(source) and source.uri.rstrip("/").endswith("/debian"):
            return source.uri.rstrip("/")
    for source in candidates:
        if plain_suite(source) and "main" in source.components:
            return source.uri.rstrip("/")
    raise NoDebianMirrorError(
        "pytest-isolate: apt's sources name no Debian archive to debootstrap from; "
        "pass --mirror http://deb.debian.org/debian (or your local mirror)"
    )


def read_apt_sources(
    sources_list: str = APT_SOURCES_LIST, sources_dir: str = APT_SOURCES_DIR
) -> list[AptSource]:
    """Read every enabled ``deb`` source of this machine, in apt's order."""
    sources: list[AptSource] = []
    if os.path.exists(sources_list):
        with open(sources_list, encoding="utf-8") as f:
            sources.extend(parse_one_line_sources(f.read()))
    for path in sorted(glob.glob(os.path.join(sources_dir, "*.list"))):
        with open(path, encoding="utf-8") as f:
            sources.extend(parse_one_line_sources(f.read()))
    for path in sorted(glob.glob(os.path.join(sources_dir, "*.sources"))):
        with open(path, encoding="utf-8") as f:
            sources.extend(parse_deb822_sources(f.read()))
    return sources


def machine_debian_mirror() -> str:
    """The Debian mirror this machine's apt uses."""
    return choose_debian_mirror(read_apt_sources())
