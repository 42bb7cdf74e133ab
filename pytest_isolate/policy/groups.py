"""The policy vocabulary: systemd's named syscall groups plus our ``@inet``.

The groups come from ``data/syscall_groups.json``, a snapshot of
``systemd-analyze syscall-filter`` made by ``scripts/generate_syscall_groups.py``
(the systemd version is recorded in the file). Users already know these names
from ``SystemCallFilter=``; reusing them means one less vocabulary to learn.

``@inet`` is ours: systemd has no group for "sockets that reach a network",
because that is a property of socket()'s first argument, not of a syscall.
It means socket() for AF_INET, AF_INET6, AF_PACKET and AF_NETLINK, compared
on the low 32 bits of the argument (the kernel truncates the int).
"""

from __future__ import annotations

import functools
import json
import socket
from dataclasses import dataclass
from pathlib import Path

DATA_FILE = Path(__file__).resolve().parent / "data" / "syscall_groups.json"

#: Our pseudo-group; the families socket() may not create under it.
INET_GROUP = "@inet"
INET_FAMILIES: tuple[tuple[str, int], ...] = (
    ("AF_INET", int(socket.AF_INET)),
    ("AF_INET6", int(socket.AF_INET6)),
    ("AF_PACKET", 17),
    ("AF_NETLINK", 16),
)
INET_DESCRIPTION = "socket() for AF_INET, AF_INET6, AF_PACKET, AF_NETLINK (our own group)"


@dataclass(frozen=True)
class ArgEquals:
    """Argument ``index`` equals ``value`` once both are cut to 32 bits."""

    index: int
    value: int


@dataclass(frozen=True)
class SyscallMatch:
    """One syscall, optionally only for one value of one argument."""

    syscall: str
    arg: ArgEquals | None = None


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, object]:
    with DATA_FILE.open(encoding="utf-8") as stream:
        loaded = json.load(stream)
    if not isinstance(loaded, dict) or not isinstance(loaded.get("groups"), dict):
        raise RuntimeError(f"{DATA_FILE} is malformed; regenerate it")
    return loaded


def systemd_version() -> str:
    """The systemd version the group data was generated from."""
    return str(_document().get("systemd_version", "unknown"))


@functools.lru_cache(maxsize=1)
def _systemd_groups() -> dict[str, tuple[str, ...]]:
    groups = _document()["groups"]
    assert isinstance(groups, dict)
    return {name: tuple(entry["syscalls"]) for name, entry in groups.items()}


def group_descriptions() -> dict[str, str]:
    """Group name -> one-line description (systemd's, and ours for ``@inet``)."""
    groups = _document()["groups"]
    assert isinstance(groups, dict)
    described = {name: str(entry.get("description", "")) for name, entry in groups.items()}
    described[INET_GROUP] = INET_DESCRIPTION
    return described


def syscall_groups() -> dict[str, tuple[str, ...]]:
    """Group name -> syscall names, nested groups flattened.

    ``@inet`` maps to ``("socket",)``: it is socket() restricted to the
    families in ``INET_FAMILIES``, which a plain list of names cannot say.
    """
    groups = dict(_systemd_groups())
    groups[INET_GROUP] = ("socket",)
    return groups


@functools.lru_cache(maxsize=1)
def known_syscalls() -> frozenset[str]:
    """Every syscall name systemd knows on any architecture (its ``@known``)."""
    return frozenset(_systemd_groups()["@known"])


def is_known_name(name: str) -> bool:
    """A valid policy word: a group (``@...``) or a syscall name."""
    if name.startswith("@"):
        return name == INET_GROUP or name in _systemd_groups()
    return name in known_syscalls()


def expand(name: str) -> tuple[SyscallMatch, ...]:
    """What a policy word matches. ``name`` must satisfy ``is_known_name``."""
    if name == INET_GROUP:
        return tuple(SyscallMatch("socket", ArgEquals(0, value)) for _, value in INET_FAMILIES)
    if name.startswith("@"):
        return tuple(SyscallMatch(syscall) for syscall in _systemd_groups()[name])
    return (SyscallMatch(name),)


def group_names() -> tuple[str, ...]:
    """Every valid group name, sorted, for error messages and docs."""
    return tuple(sorted((*_systemd_groups(), INET_GROUP)))
