"""Reports across the boundary: pytest's own serialization, checked against an allow-list.

The target side uses ``pytest_report_to_serializable`` exactly as
pytest-xdist does. The broker side never hands a target's dict to pytest
as is: :func:`sanitize_report` rebuilds it from an allow-list of keys and
types (unknown keys are dropped, wrong types rejected), pins the node id
to the test the broker asked for, shows every control character in a
string escaped, and only then calls ``pytest_report_from_serializable``.
A target can therefore not set arbitrary attributes on a report object,
nor report for another test, nor write terminal control through one.
"""

from __future__ import annotations

import re
from typing import Any

from pytest_isolate.wire.frames import ProtocolViolation
from pytest_isolate.wire.text import escape_controls

MAX_STRING = 4 * 1024 * 1024
MAX_LIST = 10_000

_WHEN = ("setup", "call", "teardown")
_OUTCOMES = ("passed", "failed", "skipped")


def _fail(path: str, expected: str) -> ProtocolViolation:
    return ProtocolViolation(f"report field {path} is not {expected}")


def _str(value: Any, path: str) -> str:
    """A bounded string, its control characters shown escaped (``wire.text``)."""
    if not isinstance(value, str) or len(value) > MAX_STRING:
        raise _fail(path, f"a string of at most {MAX_STRING} characters")
    return escape_controls(value)


def _opt_str(value: Any, path: str) -> str | None:
    return None if value is None else _str(value, path)


def _int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(path, "an integer")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, "a number")
    return float(value)


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise _fail(path, f"a list of at most {MAX_LIST} items")
    return value


def _dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "an object")
    return value


def _str_list(value: Any, path: str) -> list[str]:
    return [_str(item, f"{path}[]") for item in _list(value, path)]


def _json_value(value: Any, path: str) -> Any:
    """Any JSON value, bounded (the frame decoder already bounded its depth)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _str(value, path)
    if isinstance(value, list):
        return [_json_value(item, f"{path}[]") for item in _list(value, path)]
    if isinstance(value, dict):
        if len(value) > MAX_LIST:
            raise _fail(path, f"an object of at most {MAX_LIST} keys")
        return {_str(k, path): _json_value(v, f"{path}.{k}") for k, v in value.items()}
    raise _fail(path, "JSON")


def _scalar(value: Any, path: str) -> str | int | float | bool | None:
    """A JSON scalar: what a subtest kwarg is on the wire (strings from pytest 9.1 on)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _str(value, path)


def _file_location(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    data = _dict(value, path)
    return {
        "path": _str(data.get("path"), f"{path}.path"),
        "lineno": _int(data.get("lineno"), f"{path}.lineno"),
        "message": _str(data.get("message"), f"{path}.message"),
    }


def _repr_entry(value: Any, path: str) -> dict[str, Any]:
    entry = _dict(value, path)
    kind = entry.get("type")
    data = _dict(entry.get("data"), f"{path}.data")
    lines = _str_list(data.get("lines"), f"{path}.data.lines")
    if kind == "ReprEntryNative":
        return {"type": kind, "data": {"lines": lines, "style": "native"}}
    if kind != "ReprEntry":
        raise _fail(f"{path}.type", "ReprEntry or ReprEntryNative")
    funcargs = data.get("reprfuncargs")
    if funcargs is not None:
        args = _list(_dict(funcargs, f"{path}.reprfuncargs").get("args"), f"{path}.args")
        pairs = []
        for pair in args:
            pair = _list(pair, f"{path}.args[]")
            if len(pair) != 2:
                raise _fail(f"{path}.args[]", "a pair")
            pairs.append([_str(pair[0], f"{path}.args[0]"), _str(pair[1], f"{path}.args[1]")])
        funcargs = {"args": pairs}
    reprlocals = data.get("reprlocals")
    if reprlocals is not None:
        reprlocals = {
            "lines": _str_list(_dict(reprlocals, path).get("lines"), f"{path}.reprlocals")
        }
    return {
        "type": kind,
        "data": {
            "lines": lines,
            "reprfuncargs": funcargs,
            "reprlocals": reprlocals,
            "reprfileloc": _file_location(data.get("reprfileloc"), f"{path}.reprfileloc"),
            "style": _str(data.get("style", "long"), f"{path}.style"),
        },
    }


def _repr_traceback(value: Any, path: str) -> dict[str, Any]:
    data = _dict(value, path)
    entries = _list(data.get("reprentries"), f"{path}.reprentries")
    return {
        "reprentries": [_repr_entry(e, f"{path}.reprentries[]") for e in entries],
        "extraline": _opt_str(data.get("extraline"), f"{path}.extraline"),
        "style": _str(data.get("style", "long"), f"{path}.style"),
    }


def _sections3(value: Any, path: str) -> list[list[str]]:
    result = []
    for section in _list(value, path):
        items = _list(section, f"{path}[]")
        if len(items) != 3:
            raise _fail(f"{path}[]", "a (title, content, sep) triple")
        result.append([_str(x, f"{path}[]") for x in items])
    return result


def _longrepr(value: Any, path: str) -> Any:
    if value is None or isinstance(value, str):
        return _opt_str(value, path)
    if isinstance(value, list):  # skip location: (path, lineno, reason)
        if len(value) != 3:
            raise _fail(path, "a (path, lineno, reason) triple")
        # a tuple again: pytest's terminal tells a skip location from a traceback by type
        return (_str(value[0], path), _int(value[1], path), _str(value[2], path))
    data = _dict(value, path)
    chain = data.get("chain")
    clean_chain = None
    if chain is not None:
        clean_chain = []
        for link in _list(chain, f"{path}.chain"):
            link = _list(link, f"{path}.chain[]")
            if len(link) != 3:
                raise _fail(f"{path}.chain[]", "a (traceback, crash, description) triple")
            clean_chain.append(
                [
                    _repr_traceback(link[0], f"{path}.chain[].traceback"),
                    _file_location(link[1], f"{path}.chain[].crash"),
                    _opt_str(link[2], f"{path}.chain[].description"),
                ]
            )
    return {
        "reprcrash": _file_location(data.get("reprcrash"), f"{path}.reprcrash"),
        "reprtraceback": _repr_traceback(data.get("reprtraceback"), f"{path}.reprtraceback"),
        "sections": _sections3(data.get("sections", []), f"{path}.sections"),
        "chain": clean_chain,
    }


def _location(value: Any) -> tuple[str, int | None, str]:
    items = _list(value, "location")
    if len(items) != 3:
        raise _fail("location", "a (path, lineno, domain) triple")
    lineno = None if items[1] is None else _int(items[1], "location[1]")
    return (_str(items[0], "location[0]"), lineno, _str(items[2], "location[2]"))


def _sections(value: Any) -> list[tuple[str, str]]:
    result = []
    for section in _list(value, "sections"):
        items = _list(section, "sections[]")
        if len(items) != 2:
            raise _fail("sections[]", "a (title, content) pair")
        result.append((_str(items[0], "sections[0]"), _str(items[1], "sections[1]")))
    return result


def _user_properties(value: Any) -> list[list[Any]]:
    result = []
    for prop in _list(value, "user_properties"):
        items = _list(prop, "user_properties[]")
        if len(items) != 2:
            raise _fail("user_properties[]", "a (name, value) pair")
        result.append([_str(items[0], "user_properties[0]"), _json_value(items[1], "value")])
    return result


def _keywords(value: Any) -> dict[str, Any]:
    data = _dict(value, "keywords")
    if len(data) > MAX_LIST:
        raise _fail("keywords", f"an object of at most {MAX_LIST} keys")
    return {_str(k, "keywords"): _json_value(v, f"keywords.{k}") for k, v in data.items()}


#: pytest-html's extras (``report.extras``) a target may attach, by format: content
#: it embeds as data. An ``html`` extra would put the target's markup (scripts
#: included) into the broker's report, and a ``url`` extra any link scheme: an
#: html extra is shown as text, a url extra only for http and https.
_EXTRA_FORMATS = ("text", "json", "image", "video", "url", "html")
_EXTRA_EXTENSION = re.compile(r"[A-Za-z0-9]{1,16}")
_EXTRA_MIME = re.compile(r"[A-Za-z0-9.+-]{1,64}/[A-Za-z0-9.+-]{1,64}")


def _extras(value: Any) -> list[dict[str, Any]]:
    """pytest-html's extras: its five fields, checked so that none can name a path or markup."""
    result = []
    for extra in _list(value, "extras"):
        data = _dict(extra, "extras[]")
        kind = data.get("format_type")
        if kind not in _EXTRA_FORMATS:
            raise _fail("extras[].format_type", "one of " + ", ".join(_EXTRA_FORMATS))
        content = _str(data.get("content"), "extras[].content")
        if kind == "url" and not content.lower().startswith(("http://", "https://")):
            raise _fail("extras[].content", "an http or https address for a url extra")
        extension, mime = data.get("extension"), data.get("mime_type")
        if extension is not None and not (
            isinstance(extension, str) and _EXTRA_EXTENSION.fullmatch(extension)
        ):
            raise _fail("extras[].extension", "letters and digits (it becomes part of a file name)")
        if mime is not None and not (isinstance(mime, str) and _EXTRA_MIME.fullmatch(mime)):
            raise _fail("extras[].mime_type", "a type/subtype")
        result.append(
            {
                "name": _opt_str(data.get("name"), "extras[].name"),
                "format_type": "text" if kind == "html" else kind,
                "content": content,
                "mime_type": mime,
                "extension": extension,
            }
        )
    return result


#: How many of the test's ``subtests`` failed, as the target's pytest counted them:
#: the parent's verdict ("contains N failed subtests") depends on it.
FAILED_SUBTESTS = "isolate_failed_subtests"


def sanitize_report(data: Any, expected_nodeid: str) -> dict[str, Any]:
    """Rebuild a report dict from an allow-list; raise ProtocolViolation on any bad field."""
    report = _dict(data, "report")
    is_subtest = report.get("_report_type") == "SubTestReport"
    if report.get("$report_type") not in (
        (None, "SubtestReport") if is_subtest else ("TestReport",)
    ):
        raise _fail("$report_type", "'TestReport'")
    sent = report.get("nodeid")
    if sent != expected_nodeid:  # compared as sent: escaping would hide a forged id
        shown = _str(sent, "nodeid")
        raise ProtocolViolation(f"sent a report for {shown!r} while running {expected_nodeid!r}")
    nodeid = expected_nodeid  # the broker's own id of the item, as pytest prints it
    when = report.get("when")
    if when not in _WHEN:
        raise _fail("when", "setup, call or teardown")
    outcome = report.get("outcome")
    if outcome not in _OUTCOMES:
        raise _fail("outcome", "passed, failed or skipped")
    clean: dict[str, Any] = {
        "$report_type": "TestReport",
        "nodeid": nodeid,
        "location": _location(report.get("location")),
        "keywords": _keywords(report.get("keywords", {})),
        "outcome": outcome,
        "longrepr": _longrepr(report.get("longrepr"), "longrepr"),
        "when": when,
        "sections": _sections(report.get("sections", [])),
        "user_properties": _user_properties(report.get("user_properties", [])),
        "duration": _number(report.get("duration", 0.0), "duration"),
        "start": _number(report.get("start", 0.0), "start"),
        "stop": _number(report.get("stop", 0.0), "stop"),
    }
    if "wasxfail" in report:
        clean["wasxfail"] = _str(report["wasxfail"], "wasxfail")
    if "extras" in report:
        clean["extras"] = _extras(report["extras"])
    if FAILED_SUBTESTS in report and not is_subtest:
        count = _int(report[FAILED_SUBTESTS], FAILED_SUBTESTS)
        if not 0 <= count <= MAX_LIST:
            raise _fail(FAILED_SUBTESTS, f"a count from 0 to {MAX_LIST}")
        clean[FAILED_SUBTESTS] = count
    if is_subtest:
        context = _dict(report.get("_subtest.context"), "_subtest.context")
        kwargs = _dict(context.get("kwargs", {}), "_subtest.context.kwargs")
        del clean["$report_type"]  # pytest's subtests hook rebuilds it from _report_type
        clean["_report_type"] = "SubTestReport"
        clean["_subtest.context"] = {
            "msg": _opt_str(context.get("msg"), "_subtest.context.msg"),
            "kwargs": {_str(k, "kwargs"): _scalar(v, "kwargs") for k, v in kwargs.items()},
        }
    return clean
