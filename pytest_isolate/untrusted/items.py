"""Broker-side items built from an agent's data alone: names, locations, keywords, marks.

An :class:`UntrustedItem` has no function, no module and no fixtures; the
broker's session plugin runs it in the target and its ``runtest`` raises if
anything ever calls it here. Its node id is the agent's, neutralised for
printing (a name with ``ESC`` or a newline in it shows them as ``\\x1b``,
``\\x0a``); the agent's original is kept to ask the target for the test.

Marks become real marks so that ``-m`` and plugins that count marks work,
but marks whose arguments pytest's own plugins would evaluate as code or
import (``skipif``/``xfail`` condition strings, ``filterwarnings``
categories) keep their name only: in the target they act as written.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from pytest_isolate.pytest_compat import make_mark
from pytest_isolate.wire.item_data import CollectedItem
from pytest_isolate.wire.text import neutralise_name

#: Marks whose arguments the broker must not hand to pytest (eval of strings, imports).
NAME_ONLY_MARKS = frozenset({"skipif", "xfail", "filterwarnings", "skip", "usefixtures"})


class UntrustedItem(pytest.Item):
    """A test the broker knows only as data; it runs in the untrusted target."""

    agent_nodeid: str
    data: CollectedItem

    def runtest(self) -> None:
        raise RuntimeError(
            "pytest-isolate: an untrusted test must never run in the broker "
            f"({self.nodeid}); this is a bug in pytest-isolate"
        )

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.data.lineno, neutralise_name(self.data.domain)


def _short_name(display_id: str) -> str:
    return display_id.rsplit("::", 1)[-1] or display_id


def _mark(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> pytest.MarkDecorator:
    return make_mark(name, args, kwargs)


def build_item(session: pytest.Session, data: CollectedItem, display_id: str) -> UntrustedItem:
    """One item under the session; ``display_id`` is the unique, printable node id."""
    rootdir = Path(session.config.rootpath)
    item = UntrustedItem.from_parent(
        session, name=_short_name(display_id), nodeid=display_id, path=rootdir / data.path
    )
    item.agent_nodeid = data.nodeid
    item.data = data
    item.extra_keyword_matches.update(neutralise_name(k, 300) for k in data.keywords)
    for mark in reversed(data.marks):  # the agent lists the closest first
        if mark.name in NAME_ONLY_MARKS:
            item.add_marker(_mark(mark.name, (), {}), append=False)
        else:
            item.add_marker(_mark(mark.name, mark.args, dict(mark.kwargs)), append=False)
    return item


def display_ids(nodeids: Iterable[str]) -> list[str]:
    """Printable node ids, unique: a collision after neutralising gets a visible suffix."""
    seen: dict[str, int] = {}
    result = []
    for nodeid in nodeids:
        display = neutralise_name(nodeid, 2000)
        if display in seen:
            seen[display] += 1
            display = f"{display}[#{seen[display]}]"
        seen.setdefault(display, 0)
        result.append(display)
    return result
