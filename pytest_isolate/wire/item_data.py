"""A collected test as plain data: described in the target, validated in the broker.

In untrusted mode the broker never imports the project, so everything it
knows about a test (node id, location, keywords, marks) comes from an agent
that already ran the project's conftests: hostile data. The agent side
(:func:`describe_item`) turns an item into JSON-safe values; the broker side
(:func:`parse_item_data`) accepts only the expected shape, bounded sizes, a
location inside the rootdir and mark names that are identifiers, and returns
frozen values. Mark arguments that are not JSON-like cross as their ``repr``:
they can select (``-m``) but never become objects in the broker.

Kept importable on Python 3.9 (the describing half runs on the target's Python).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Hashable, List, Tuple

from pytest_isolate.wire.frames import ProtocolViolation

MAX_NODEID = 4096
MAX_PATH = 4096
MAX_DOMAIN = 1000
MAX_KEYWORDS = 200
MAX_KEYWORD = 300
MAX_MARKS = 64
MAX_MARK_ARGS = 32
MAX_VALUE_TEXT = 1000
MAX_DEPTH = 4

_MARK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")

__all__ = ["CollectedItem", "MarkData", "describe_item", "parse_item_data"]


@dataclass(frozen=True)
class MarkData:
    """One mark as data: its name and JSON-like, frozen arguments."""

    name: str
    args: Tuple[Hashable, ...] = ()
    kwargs: Tuple[Tuple[str, Hashable], ...] = ()

    def kwarg(self, key: str, default: Any = None) -> Any:
        for name, value in self.kwargs:
            if name == key:
                return value
        return default


@dataclass(frozen=True)
class CollectedItem:
    """What the broker knows about one test it will never import."""

    nodeid: str
    path: str  # relative to the rootdir, checked not to leave it
    lineno: int | None
    domain: str
    keywords: Tuple[str, ...]
    marks: Tuple[MarkData, ...]


# -- agent side ----------------------------------------------------------------
def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of a mark argument; anything else becomes its (short) repr."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 1 << 62 else repr(value)[:MAX_VALUE_TEXT]
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value[:MAX_VALUE_TEXT]
    if depth < MAX_DEPTH and isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in list(value)[:MAX_MARK_ARGS]]
    if depth < MAX_DEPTH and isinstance(value, dict):
        pairs = list(value.items())[:MAX_MARK_ARGS]
        return {str(k)[:MAX_KEYWORD]: _plain(v, depth + 1) for k, v in pairs}
    try:
        return repr(value)[:MAX_VALUE_TEXT]
    except Exception:
        return "<unrepresentable>"


def describe_item(item: Any) -> Dict[str, Any]:
    """The data the broker builds its item from (called in the target, per item).

    A broken item (a plugin's odd ``location``) must not cost the whole
    collection: it is described by its node id alone.
    """
    try:
        return _describe(item)
    except Exception:
        nodeid = str(item.nodeid)
        return {
            "nodeid": nodeid,
            "location": [nodeid.split("::")[0] or ".", None, nodeid],
            "keywords": [],
            "marks": [],
        }


def _describe(item: Any) -> Dict[str, Any]:
    path, lineno, domain = item.location
    marks: List[Dict[str, Any]] = []
    for mark in list(item.iter_markers())[:MAX_MARKS]:
        marks.append(
            {
                "name": str(mark.name)[:100],
                "args": _plain(list(mark.args)),
                "kwargs": _plain(dict(mark.kwargs)),
            }
        )
    return {
        "nodeid": item.nodeid,
        "location": [str(path), lineno if isinstance(lineno, int) else None, str(domain)],
        "keywords": [str(k)[:MAX_KEYWORD] for k in list(item.keywords)[:MAX_KEYWORDS]],
        "marks": marks,
    }


# -- broker side ---------------------------------------------------------------
def _freeze(value: Any, where: str, depth: int = 0) -> Hashable:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProtocolViolation(f"{where}: a non-finite number")
        return value
    if isinstance(value, str):
        if len(value) > MAX_VALUE_TEXT:
            raise ProtocolViolation(f"{where}: a string longer than {MAX_VALUE_TEXT}")
        return value
    if depth >= MAX_DEPTH:
        raise ProtocolViolation(f"{where}: nested deeper than {MAX_DEPTH}")
    if isinstance(value, list) and len(value) <= MAX_MARK_ARGS:
        return tuple(_freeze(v, where, depth + 1) for v in value)
    if isinstance(value, dict) and len(value) <= MAX_MARK_ARGS:
        return tuple(
            sorted((_key(k, where), _freeze(v, where, depth + 1)) for k, v in value.items())
        )
    raise ProtocolViolation(f"{where}: not a bounded JSON value")


def _key(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_KEYWORD:
        raise ProtocolViolation(f"{where}: a key is not a short string")
    return value


def _text(value: Any, limit: int, where: str) -> str:
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise ProtocolViolation(f"{where}: not a string of at most {limit} characters")
    return value


def _inside_rootdir(relpath: str, where: str) -> str:
    """A location path must name something under the rootdir, never ``/etc/...`` or ``../``."""
    if not relpath or os.path.isabs(relpath):
        raise ProtocolViolation(f"{where}: location path {relpath[:200]!r} is not relative")
    normal = os.path.normpath(relpath)
    if normal == ".." or normal.startswith(".." + os.sep):
        raise ProtocolViolation(f"{where}: location path {relpath[:200]!r} leaves the rootdir")
    return normal


def _mark(value: Any, where: str) -> MarkData:
    if not isinstance(value, dict) or set(value) != {"name", "args", "kwargs"}:
        raise ProtocolViolation(f"{where}: a mark is not {{name, args, kwargs}}")
    name = value["name"]
    if not isinstance(name, str) or not _MARK_NAME.match(name):
        raise ProtocolViolation(f"{where}: mark name {str(name)[:100]!r} is not an identifier")
    args, kwargs = value["args"], value["kwargs"]
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ProtocolViolation(f"{where}: mark {name} has malformed arguments")
    frozen_args = _freeze(args, f"{where}: mark {name}")
    frozen_kwargs = _freeze(kwargs, f"{where}: mark {name}")
    assert isinstance(frozen_args, tuple) and isinstance(frozen_kwargs, tuple)
    return MarkData(name, frozen_args, frozen_kwargs)


def parse_item_data(value: Any) -> CollectedItem:
    """Validate one agent description; raise ProtocolViolation on anything unexpected."""
    if not isinstance(value, dict) or set(value) != {"nodeid", "location", "keywords", "marks"}:
        raise ProtocolViolation("collected item: not {nodeid, location, keywords, marks}")
    nodeid = _text(value["nodeid"], MAX_NODEID, "collected item: nodeid")
    if not nodeid.strip():
        raise ProtocolViolation("collected item: empty node id")
    where = f"collected item {nodeid[:200]!r}"
    location = value["location"]
    if not isinstance(location, list) or len(location) != 3:
        raise ProtocolViolation(f"{where}: location is not [path, lineno, domain]")
    path = _inside_rootdir(_text(location[0], MAX_PATH, where), where)
    lineno = location[1]
    if lineno is not None and (
        isinstance(lineno, bool) or not isinstance(lineno, int) or not 0 <= lineno < 1 << 31
    ):
        raise ProtocolViolation(f"{where}: lineno is not a small non-negative int")
    domain = _text(location[2], MAX_DOMAIN, where)
    keywords = value["keywords"]
    if not isinstance(keywords, list) or len(keywords) > MAX_KEYWORDS:
        raise ProtocolViolation(f"{where}: keywords is not a list of <= {MAX_KEYWORDS}")
    marks = value["marks"]
    if not isinstance(marks, list) or len(marks) > MAX_MARKS:
        raise ProtocolViolation(f"{where}: marks is not a list of <= {MAX_MARKS}")
    return CollectedItem(
        nodeid=nodeid,
        path=path,
        lineno=lineno,
        domain=domain,
        keywords=tuple(_text(k, MAX_KEYWORD, where) for k in keywords),
        marks=tuple(_mark(m, where) for m in marks),
    )
