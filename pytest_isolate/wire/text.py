"""Text from untrusted code made safe to print: no terminal control, bounded size.

A test name, an assertion message or captured output can carry escape
sequences that retitle the terminal (``ESC ] 0 ; ... BEL``), clear it
(``ESC [ 2 J``), move the cursor to overwrite earlier lines, or, through
carriage returns, newlines in names and Unicode bidirectional overrides,
make a failing line look like a passing one. Everything the broker prints
that came from a target goes through here first: each control character
becomes a visible escape (``\\x1b``), and long text is cut with a note.
"""

from __future__ import annotations

import re
from typing import Any

#: Per string in a report; captured output beyond it is cut (the tail is kept).
MAX_REPORT_TEXT = 64 * 1024
#: Names (node ids, keywords) are short or they are not names.
MAX_NAME = 1000

# C0 controls except tab and newline, DEL, C1 controls, and the Unicode
# format characters that reorder or hide text (bidi embeddings, overrides,
# isolates, zero-width joiners are harmless and kept).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# In names even tab and newline are controls: a newline would forge a report line.
_NAME_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with each control character shown as a visible escape; newlines and tabs stay.

    What every string a target sends goes through on arrival (``wire.reports``,
    the warnings of ``wire.test_frames``), so nothing a target wrote reaches
    the terminal, JUnit or another plugin as terminal control.
    """
    return _CONTROL.sub(_escape, text)


def neutralise(text: str, limit: int = MAX_REPORT_TEXT) -> str:
    """``text`` with control characters made visible, cut to about ``limit`` characters.

    Newlines and tabs stay (tracebacks and captured output need them). When
    cut, the end is kept: the end of output is where a failure explains itself.
    """
    if len(text) > limit:
        dropped = len(text) - limit
        text = f"[pytest-isolate: {dropped} characters cut]\n" + text[-limit:]
    return escape_controls(text)


def neutralise_name(text: str, limit: int = MAX_NAME) -> str:
    """A name for one line of output: every control made visible, newlines included."""
    clean = _NAME_CONTROL.sub(_escape, text)
    return clean if len(clean) <= limit else clean[:limit] + "..."


def neutralise_data(value: Any, limit: int = MAX_REPORT_TEXT) -> Any:
    """A copy of JSON-like ``value`` (a sanitized report) with every string neutralised."""
    if isinstance(value, str):
        return neutralise(value, limit)
    if isinstance(value, list):
        return [neutralise_data(v, limit) for v in value]
    if isinstance(value, tuple):
        return tuple(neutralise_data(v, limit) for v in value)
    if isinstance(value, dict):  # keys too: keyword names, subtest kwargs
        return {
            neutralise_name(k) if isinstance(k, str) else k: neutralise_data(v, limit)
            for k, v in value.items()
        }
    return value
