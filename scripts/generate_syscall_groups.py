#!/usr/bin/env python3
"""Generate ``pytest_isolate/policy/data/syscall_groups.json`` from systemd.

The policy vocabulary (``@mount``, ``@network-io``, ...) is systemd's, so that
users can reuse what they know from ``SystemCallFilter=``. We do not depend on
systemd at run time: this script snapshots ``systemd-analyze syscall-filter``
once, flattens nested groups (``@system-service`` lists ``@aio`` and so on)
and records the systemd version, so a regenerated file shows in review what
changed and where it came from.

Usage::

    python scripts/generate_syscall_groups.py [--output PATH] [--check]

``--check`` exits 1 when the committed file differs from what this machine's
systemd would generate (for CI on a machine that has the pinned version).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

DEFAULT_OUTPUT = (
    Path(__file__).resolve().parent.parent
    / "pytest_isolate"
    / "policy"
    / "data"
    / "syscall_groups.json"
)

_GROUP_HEADER = re.compile(r"^(@[a-z0-9-]+)$")
_MEMBER = re.compile(r"^\s+([@a-z0-9_-]+)$")
_DESCRIPTION = re.compile(r"^\s+#\s*(.*)$")


def parse_syscall_filter(text: str) -> dict[str, dict[str, object]]:
    """Parse the text of ``systemd-analyze syscall-filter`` into raw groups.

    Each group keeps its description and its direct members (syscall names and
    nested ``@group`` names, in the order systemd prints them).
    """
    groups: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        header = _GROUP_HEADER.match(line)
        if header:
            current = {"description": "", "members": []}
            groups[header.group(1)] = current
            continue
        if current is None:
            continue  # trailing notes such as the "unlisted system calls" comment
        description = _DESCRIPTION.match(line)
        if description:
            current["description"] = description.group(1).strip()
            continue
        member = _MEMBER.match(line)
        if member:
            members = current["members"]
            assert isinstance(members, list)
            members.append(member.group(1))
    return groups


def flatten(
    groups: dict[str, dict[str, object]], name: str, seen: frozenset[str] = frozenset()
) -> set[str]:
    """All syscall names of ``name``, nested groups resolved (cycles refused)."""
    if name in seen:
        raise ValueError(f"cycle in syscall groups through {name}")
    members = groups[name]["members"]
    assert isinstance(members, list)
    result: set[str] = set()
    for member in members:
        if member.startswith("@"):
            result |= flatten(groups, member, seen | {name})
        else:
            result.add(member)
    return result


def build_document(text: str, systemd_version: str) -> dict[str, object]:
    raw = parse_syscall_filter(text)
    if "@known" not in raw or "@mount" not in raw:
        raise ValueError("systemd-analyze output lacks @known or @mount: unexpected format")
    groups: dict[str, object] = {}
    for name in sorted(raw):
        members = raw[name]["members"]
        assert isinstance(members, list)
        groups[name] = {
            "description": raw[name]["description"],
            "includes": sorted(m for m in members if m.startswith("@")),
            "syscalls": sorted(flatten(raw, name)),
        }
    return {
        "source": "systemd-analyze syscall-filter",
        "systemd_version": systemd_version,
        "generator": "scripts/generate_syscall_groups.py",
        "groups": groups,
    }


def systemd_version() -> str:
    first = subprocess.run(
        ["systemd-analyze", "--version"], check=True, capture_output=True, text=True
    ).stdout.splitlines()[0]
    # "systemd 252 (252.39-1~deb12u2)" -> "252 (252.39-1~deb12u2)"
    return first.removeprefix("systemd ").strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    options = parser.parse_args(argv)
    text = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rendered = json.dumps(build_document(text, systemd_version()), indent=1, sort_keys=True) + "\n"
    if options.check:
        current = options.output.read_text() if options.output.exists() else ""
        if current != rendered:
            print(f"{options.output} is out of date; rerun {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(rendered)
    print(f"wrote {options.output} from systemd {systemd_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
