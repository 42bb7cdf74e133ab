"""Reports the broker writes itself, for phases a dead target never reported."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pytest

from pytest_isolate.backends.base import TargetResult
from pytest_isolate.pytest_compat import xfail_of
from pytest_isolate.wire.text import neutralise, neutralise_name


def xfail_reason(item: pytest.Item, phase: str) -> str | None:
    """A crash in the call of a test marked xfail(run=True, raises=None) counts as xfailed."""
    if phase != "call":
        return None
    try:
        xfailed = xfail_of(item)
    except Exception:
        return None
    if xfailed is None or not xfailed.run or xfailed.raises is not None:
        return None
    return f"reason: {xfailed.reason}; " if xfailed.reason else ""


def _neutral_sections(sections: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(neutralise_name(title), neutralise(body)) for title, body in sections]


def failure_text(message: str, sections: list[tuple[str, str]]) -> str:
    """What happened, then what the target left (its faulthandler traceback, its output tail).

    One text, so that every consumer of the failure shows all of it: the
    terminal, and JUnit XML, whose failure element carries only this text
    (captured-output sections reach it only with ``junit_logging``).
    """
    parts = [neutralise(message)]
    for title, body in sections:
        parts.append(f"{f' {neutralise_name(title)} ':-^72}\n{neutralise(body.rstrip())}")
    return "\n\n".join(parts)


def missing_phase_reports(
    item: pytest.Item, result: TargetResult, seen: list[str], label: str
) -> Iterator[pytest.TestReport]:
    """The failing phase's report, then a teardown so plugins see a complete test."""
    assert result.failure is not None
    phase = next((p for p in ("setup", "call", "teardown") if p not in seen), "teardown")
    keywords: dict[str, Literal[1]] = dict.fromkeys(item.keywords, 1)
    message = f"[isolate:{label}] {result.failure}"
    outcome = "failed"
    longrepr: object = failure_text(message, result.sections)
    sections: list[tuple[str, str]] = []
    wasxfail = None
    if result.failure_kind in ("skip",):
        outcome = "skipped"
        longrepr = (str(item.location[0]), (item.location[1] or 0) + 1, neutralise(message))
        sections = _neutral_sections(result.sections)
    elif result.failure_kind in ("crash", "timeout"):
        wasxfail = xfail_reason(item, phase)
        if wasxfail is not None:
            outcome = "skipped"
            longrepr, sections = neutralise(message), _neutral_sections(result.sections)
    report = pytest.TestReport(
        nodeid=item.nodeid,
        location=item.location,
        keywords=keywords,
        outcome=outcome,  # type: ignore[arg-type]
        longrepr=longrepr,  # type: ignore[arg-type]
        when=phase,  # type: ignore[arg-type]
        sections=sections,
        duration=result.duration,
        user_properties=[("isolate", label)],
    )
    if wasxfail is not None:
        report.wasxfail = neutralise(wasxfail + f"[isolate:{label}] {result.failure}")
    yield report
    if phase != "teardown":
        yield pytest.TestReport(
            nodeid=item.nodeid,
            location=item.location,
            keywords=keywords,
            outcome="passed",
            longrepr=None,
            when="teardown",
            sections=[],
            duration=0.0,
        )
