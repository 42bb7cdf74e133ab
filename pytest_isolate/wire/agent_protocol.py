"""The messages between the broker and an agent, and their validation in both directions.

Every message is one frame (``wire.frames``). Each side parses what it
receives through a function here that checks types, sizes and allowed keys
and returns a small dataclass, or raises :class:`ProtocolViolation`. The
agent is assumed compromised once a test ran in its target, so the broker
validates everything; the agent validates the broker's messages so that a
bug on our side fails loudly instead of running something half-understood.

Conversation::

    agent  -> hello      {python, pytest, pid, agent}
    broker -> start      {rootdir, invocation_dir, args, limits}
    agent  -> collected  {nodeids, errors, items}
    broker -> run        {nodeid, mem_limit, cpu_limit, env, seccomp} (repeated)
    agent  -> report | warning | setup-error | done              (relayed from the test's child)
    broker -> kill                                               (any time during a test)
    agent  -> exited     {status, violation, sections, oom_killed, seccomp}
           or refused    {message}                               (unknown node id)
    broker -> shutdown                                           (or stdin EOF: broker gone)

Kept importable on Python 3.9 (the agent runs on the target's Python).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from pytest_isolate.wire.coverage_frames import COVERAGE_SETTINGS
from pytest_isolate.wire.frames import FrameLimits, ProtocolViolation

MAX_TEXT = 64 * 1024
MAX_PATH = 4096
MAX_ARGS = 10_000
MAX_NODEIDS = 200_000
MAX_ERRORS = 1000
MAX_SECTIONS = 8
MAX_ENV = 1000
#: A BPF program has at most 4096 instructions of 8 bytes; base64 makes 4 of 3.
MAX_BPF_TEXT = 4096 * 8 * 4 // 3 + 4
#: Distinct denied calls an agent reports per test (it folds the rest by syscall).
MAX_RAW_VIOLATIONS = 256
MAX_TEXT_ERROR = 2000

__all__ = [
    "Collected",
    "Exited",
    "Hello",
    "ProtocolViolation",
    "RunRequest",
    "SeccompOutcome",
    "SeccompRequest",
    "StartRequest",
    "parse_broker_message",
    "parse_collected",
    "parse_exited",
    "parse_hello",
    "parse_refused",
]


def _text(message: Dict[str, Any], key: str, limit: int = MAX_TEXT) -> str:
    value = message.get(key)
    if not isinstance(value, str):
        raise ProtocolViolation(f"{message.get('type')!s:.20}: {key} is not a string")
    if len(value) > limit:
        raise ProtocolViolation(f"{message.get('type')!s:.20}: {key} longer than {limit}")
    return value


def _optional_text(message: Dict[str, Any], key: str, limit: int = MAX_TEXT) -> str | None:
    return None if message.get(key) is None else _text(message, key, limit)


def _int(message: Dict[str, Any], key: str, low: int, high: int) -> int:
    value = message.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ProtocolViolation(
            f"{message.get('type')!s:.20}: {key} is not an int in [{low}, {high}]"
        )
    return value


def _optional_positive(message: Dict[str, Any], key: str) -> float | None:
    value = message.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ProtocolViolation(f"{message.get('type')!s:.20}: {key} is not a positive number")
    return value


def _text_list(message: Dict[str, Any], key: str, count: int, limit: int) -> Tuple[str, ...]:
    value = message.get(key)
    if not isinstance(value, list) or len(value) > count:
        raise ProtocolViolation(f"{message.get('type')!s:.20}: {key} is not a list of <= {count}")
    for entry in value:
        if not isinstance(entry, str) or len(entry) > limit:
            raise ProtocolViolation(
                f"{message.get('type')!s:.20}: {key} holds a non-string or long entry"
            )
    return tuple(value)


def _only_keys(message: Dict[str, Any], allowed: Tuple[str, ...]) -> None:
    extra = set(message) - set(allowed) - {"type"}
    if extra:
        raise ProtocolViolation(
            f"{message.get('type')!s:.20}: unexpected keys {sorted(extra)[:5]!r:.200}"
        )


# -- agent -> broker ---------------------------------------------------------
@dataclass(frozen=True)
class Hello:
    python: str
    pytest: str
    pid: int
    agent: str

    def to_message(self) -> Dict[str, Any]:
        return {
            "type": "hello",
            "python": self.python,
            "pytest": self.pytest,
            "pid": self.pid,
            "agent": self.agent,
        }


def parse_hello(message: Dict[str, Any]) -> Hello:
    _expect(message, "hello")
    _only_keys(message, ("python", "pytest", "pid", "agent"))
    return Hello(
        python=_text(message, "python", 200),
        pytest=_text(message, "pytest", 100),
        pid=_int(message, "pid", 1, 1 << 22),
        agent=_text(message, "agent", 100),
    )


@dataclass(frozen=True)
class Collected:
    nodeids: Tuple[str, ...]
    errors: Tuple[str, ...] = ()
    #: One description per node id (location, keywords, marks), still unchecked:
    #: untrusted mode validates each through ``wire.item_data`` before use.
    items: Tuple[Dict[str, Any], ...] = ()

    def to_message(self) -> Dict[str, Any]:
        return {
            "type": "collected",
            "nodeids": list(self.nodeids),
            "errors": list(self.errors),
            "items": list(self.items),
        }


def parse_collected(message: Dict[str, Any]) -> Collected:
    _expect(message, "collected")
    _only_keys(message, ("nodeids", "errors", "items"))
    items = message.get("items", [])
    if not isinstance(items, list) or len(items) > MAX_NODEIDS:
        raise ProtocolViolation(f"collected: items is not a list of <= {MAX_NODEIDS}")
    if not all(isinstance(entry, dict) for entry in items):
        raise ProtocolViolation("collected: an items entry is not an object")
    return Collected(
        nodeids=_text_list(message, "nodeids", MAX_NODEIDS, MAX_PATH),
        errors=_text_list(message, "errors", MAX_ERRORS, MAX_TEXT),
        items=tuple(items),
    )


#: One denied call as the agent counted it: (audit arch, syscall nr, raw args, count, killed).
RawDenial = Tuple[int, int, Tuple[int, ...], int, bool]


@dataclass(frozen=True)
class SeccompOutcome:
    """What the agent's listener saw of a test under ``seccomp=``: numbers, never names.

    The broker names the calls itself (it does not take the target's word
    for what a number means) and decides whether they fail the test.
    """

    denials: Tuple[RawDenial, ...] = ()
    #: (arch, nr) of the call the baseline killed the child for, from the guest's kernel log
    kernel_kill: Tuple[int, int] | None = None
    #: servicing the listener failed: the denials may be incomplete
    error: str | None = None

    def to_message(self) -> Dict[str, Any]:
        return {
            "denials": [[a, n, list(args), c, k] for a, n, args, c, k in self.denials],
            "kernel_kill": None if self.kernel_kill is None else list(self.kernel_kill),
            "error": self.error,
        }


def _parse_seccomp_outcome(value: Any) -> SeccompOutcome | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolViolation("exited: seccomp is not an object")
    _only_keys(value, ("denials", "kernel_kill", "error"))
    denials = value.get("denials", [])
    if not isinstance(denials, list) or len(denials) > MAX_RAW_VIOLATIONS:
        raise ProtocolViolation(f"exited: seccomp denials is not a list of <= {MAX_RAW_VIOLATIONS}")
    clean: List[RawDenial] = []
    for entry in denials:
        if not isinstance(entry, list) or len(entry) != 5:
            raise ProtocolViolation(
                "exited: a seccomp denial is not [arch, nr, args, count, killed]"
            )
        arch, nr, args, count, killed = entry
        if (
            not _is_int(arch, 0, 0xFFFFFFFF)
            or not _is_int(nr, 0, 0xFFFFFFFF)
            or not isinstance(args, list)
            or len(args) > 6
            or not all(_is_int(arg, 0, (1 << 64) - 1) for arg in args)
            or not _is_int(count, 1, 1 << 62)
            or not isinstance(killed, bool)
        ):
            raise ProtocolViolation("exited: a seccomp denial holds a bad value")
        clean.append((arch, nr, tuple(args), count, killed))
    kill = value.get("kernel_kill")
    if kill is not None and (
        not isinstance(kill, list)
        or len(kill) != 2
        or not all(_is_int(part, 0, 0xFFFFFFFF) for part in kill)
    ):
        raise ProtocolViolation("exited: seccomp kernel_kill is not [arch, nr]")
    return SeccompOutcome(
        denials=tuple(clean),
        kernel_kill=None if kill is None else (kill[0], kill[1]),
        error=_optional_text(dict(value, type="exited"), "error", MAX_TEXT_ERROR),
    )


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True)
class Exited:
    """How a test's child ended, seen by the agent."""

    status: int  # the raw wait status
    violation: str | None = None  # the child broke the protocol (the agent killed it)
    sections: Tuple[Tuple[str, str], ...] = ()  # output tail, faulthandler log
    oom_killed: bool = False
    seccomp: SeccompOutcome | None = None  # only for a test run with ``seccomp=``

    def to_message(self) -> Dict[str, Any]:
        return {
            "type": "exited",
            "status": self.status,
            "violation": self.violation,
            "sections": [list(s) for s in self.sections],
            "oom_killed": self.oom_killed,
            "seccomp": None if self.seccomp is None else self.seccomp.to_message(),
        }


def parse_exited(message: Dict[str, Any]) -> Exited:
    _expect(message, "exited")
    _only_keys(message, ("status", "violation", "sections", "oom_killed", "seccomp"))
    sections = message.get("sections", [])
    if not isinstance(sections, list) or len(sections) > MAX_SECTIONS:
        raise ProtocolViolation(f"exited: sections is not a list of <= {MAX_SECTIONS}")
    clean: List[Tuple[str, str]] = []
    for section in sections:
        if (
            not isinstance(section, list)
            or len(section) != 2
            or not all(isinstance(part, str) for part in section)
            or len(section[0]) > 200
            or len(section[1]) > MAX_TEXT
        ):
            raise ProtocolViolation("exited: a section is not [title, text] within size")
        clean.append((section[0], section[1]))
    oom = message.get("oom_killed", False)
    if not isinstance(oom, bool):
        raise ProtocolViolation("exited: oom_killed is not a bool")
    return Exited(
        status=_int(message, "status", 0, 0xFFFF),
        violation=_optional_text(message, "violation", 2000),
        sections=tuple(clean),
        oom_killed=oom,
        seccomp=_parse_seccomp_outcome(message.get("seccomp")),
    )


#: The test's own output, relayed as it comes when the run does not capture it (``-s``).
OUTPUT_FRAME = "output"
#: Text per output frame; the agent splits what it reads to fit.
MAX_OUTPUT_TEXT = 64 * 1024


def output_frame(text: str) -> Dict[str, Any]:
    return {"type": OUTPUT_FRAME, "text": text}


def parse_output(message: Dict[str, Any]) -> str:
    """The text of an ``output`` frame; shown escaped by the broker, never interpreted."""
    _expect(message, OUTPUT_FRAME)
    _only_keys(message, ("text",))
    return _text(message, "text", MAX_OUTPUT_TEXT)


def parse_refused(message: Dict[str, Any]) -> str:
    _expect(message, "refused")
    _only_keys(message, ("message",))
    return _text(message, "message", 2000)


# -- broker -> agent ---------------------------------------------------------
@dataclass(frozen=True)
class StartRequest:
    rootdir: str
    invocation_dir: str
    args: Tuple[str, ...]
    limits: FrameLimits = field(default_factory=FrameLimits)
    #: the broker's option values (``config.option``), set on the agent's after parsing
    options: Tuple[Tuple[str, Any], ...] = ()
    #: what the broker's coverage measures (``wire.coverage_frames.COVERAGE_SETTINGS``), if it runs
    coverage: Tuple[Tuple[str, Any], ...] | None = None

    def to_message(self) -> Dict[str, Any]:
        limits = self.limits
        return {
            "type": "start",
            "rootdir": self.rootdir,
            "invocation_dir": self.invocation_dir,
            "args": list(self.args),
            "options": dict(self.options),
            "coverage": None if self.coverage is None else dict(self.coverage),
            "limits": {
                "max_frame_bytes": limits.max_frame_bytes,
                "max_total_bytes": limits.max_total_bytes,
                "max_frames": limits.max_frames,
                "max_depth": limits.max_depth,
            },
        }


@dataclass(frozen=True)
class SeccompRequest:
    """A policy for the test's child as finished BPF, compiled by the broker.

    The agent loads the programs as they are: a target needs no libseccomp,
    and a broken policy is refused in the broker, before any target starts.
    """

    baseline: bytes
    notify: bytes | None
    seccomp_nr: int  # the number of seccomp(2), resolved by the broker's libseccomp
    kill: bool  # on_violation="kill": a denied call kills the test

    def to_message(self) -> Dict[str, Any]:
        return {
            "baseline": base64.b64encode(self.baseline).decode(),
            "notify": None if self.notify is None else base64.b64encode(self.notify).decode(),
            "seccomp_nr": self.seccomp_nr,
            "kill": self.kill,
        }


def _bpf(value: Any, key: str) -> bytes:
    if not isinstance(value, str) or len(value) > MAX_BPF_TEXT:
        raise ProtocolViolation(f"run: seccomp {key} is not base64 text within size")
    try:
        program = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolViolation(f"run: seccomp {key} is not base64") from None
    if not program or len(program) % 8:
        raise ProtocolViolation(f"run: seccomp {key} is not a BPF program")
    return program


def _parse_seccomp_request(value: Any) -> SeccompRequest | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolViolation("run: seccomp is not an object")
    _only_keys(value, ("baseline", "notify", "seccomp_nr", "kill"))
    notify = value.get("notify")
    kill = value.get("kill")
    if not isinstance(kill, bool):
        raise ProtocolViolation("run: seccomp kill is not a bool")
    return SeccompRequest(
        baseline=_bpf(value.get("baseline"), "baseline"),
        notify=None if notify is None else _bpf(notify, "notify"),
        seccomp_nr=_int(dict(value, type="run"), "seccomp_nr", 0, 1 << 20),
        kill=kill,
    )


@dataclass(frozen=True)
class RunRequest:
    nodeid: str
    mem_limit: int | None = None
    cpu_limit: float | None = None
    env: Tuple[Tuple[str, str], ...] = ()
    seccomp: SeccompRequest | None = None
    #: the broker item's ``execution_count`` (pytest-rerunfailures' attempt), if set
    execution_count: int | None = None

    def to_message(self) -> Dict[str, Any]:
        return {
            "type": "run",
            "nodeid": self.nodeid,
            "mem_limit": self.mem_limit,
            "cpu_limit": self.cpu_limit,
            "env": dict(self.env),
            "seccomp": None if self.seccomp is None else self.seccomp.to_message(),
            "execution_count": self.execution_count,
        }


def _parse_start(message: Dict[str, Any]) -> StartRequest:
    _only_keys(message, ("rootdir", "invocation_dir", "args", "limits", "options", "coverage"))
    limits = message.get("limits")
    if not isinstance(limits, dict) or set(limits) != {
        "max_frame_bytes",
        "max_total_bytes",
        "max_frames",
        "max_depth",
    }:
        raise ProtocolViolation("start: limits must name the four frame limits")
    return StartRequest(
        rootdir=_text(message, "rootdir", MAX_PATH),
        invocation_dir=_text(message, "invocation_dir", MAX_PATH),
        args=_text_list(message, "args", MAX_ARGS, MAX_PATH),
        options=_options(message.get("options", {})),
        coverage=_coverage_settings(message.get("coverage")),
        limits=FrameLimits(
            max_frame_bytes=_int(limits, "max_frame_bytes", 1024, 1 << 31),
            max_total_bytes=_int(limits, "max_total_bytes", 1024, 1 << 40),
            max_frames=_int(limits, "max_frames", 1, 1 << 31),
            max_depth=_int(limits, "max_depth", 4, 1000),
        ),
    )


def _option_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    return (
        isinstance(value, list)
        and len(value) <= MAX_ARGS
        and all(not isinstance(item, list) and _option_value(item) for item in value)
    )


def _options(value: Any) -> Tuple[Tuple[str, Any], ...]:
    """Option values: names of at most 200 characters, JSON scalars or flat lists of them."""
    if not isinstance(value, dict) or len(value) > MAX_ARGS:
        raise ProtocolViolation("start: options is not an object of option values")
    for name, item in value.items():
        if not (isinstance(name, str) and 0 < len(name) <= 200 and name.isidentifier()):
            raise ProtocolViolation(f"start: option name {name!r} is not an identifier")
        if not _option_value(item):
            raise ProtocolViolation(f"start: option {name} is not a JSON scalar or list of them")
    return tuple(sorted(value.items()))


def _coverage_settings(value: Any) -> Tuple[Tuple[str, Any], ...] | None:
    """branch (a bool) and source, source_pkgs, include, omit (None or lists of text)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= set(COVERAGE_SETTINGS):
        raise ProtocolViolation(
            "start: coverage names settings other than " + ", ".join(COVERAGE_SETTINGS)
        )
    for name, item in value.items():
        if name == "branch":
            ok = isinstance(item, bool)
        else:
            ok = item is None or (
                isinstance(item, list)
                and len(item) <= MAX_ARGS
                and all(isinstance(text, str) and len(text) <= MAX_PATH for text in item)
            )
        if not ok:
            raise ProtocolViolation(f"start: coverage setting {name} has the wrong type")
    return tuple(sorted(value.items()))


def _execution_count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise ProtocolViolation("run: execution_count is not a count")
    return value


def _parse_run(message: Dict[str, Any]) -> RunRequest:
    _only_keys(message, ("nodeid", "mem_limit", "cpu_limit", "env", "seccomp", "execution_count"))
    env = message.get("env", {})
    if (
        not isinstance(env, dict)
        or len(env) > MAX_ENV
        or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) < 1024 and len(v) <= MAX_TEXT
            for k, v in env.items()
        )
    ):
        raise ProtocolViolation("run: env is not a dict of str to str within size")
    mem_limit = _optional_positive(message, "mem_limit")
    if mem_limit is not None and not isinstance(mem_limit, int):
        raise ProtocolViolation("run: mem_limit is not an int")
    return RunRequest(
        nodeid=_text(message, "nodeid", MAX_PATH),
        mem_limit=mem_limit,
        cpu_limit=_optional_positive(message, "cpu_limit"),
        env=tuple(sorted(env.items())),
        seccomp=_parse_seccomp_request(message.get("seccomp")),
        execution_count=_execution_count(message.get("execution_count")),
    )


def parse_broker_message(message: Dict[str, Any]) -> Any:
    """A broker message for the agent: StartRequest, RunRequest, or "kill" / "shutdown"."""
    kind = message.get("type")
    if kind == "start":
        return _parse_start(message)
    if kind == "run":
        return _parse_run(message)
    if kind in ("kill", "shutdown"):
        _only_keys(message, ())
        return kind
    raise ProtocolViolation(f"unknown broker message type {kind!r:.40}")


def _expect(message: Dict[str, Any], kind: str) -> None:
    if message.get("type") != kind:
        raise ProtocolViolation(f"expected a {kind!r} message, got {message.get('type')!r:.40}")
