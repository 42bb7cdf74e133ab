"""Project settings that would make the broker load or write what the project chose.

Pytest applies some ini settings while it parses the command line, before
any plugin installed as an entry point (this one) is loaded: ``addopts``
(``-p NAME`` imports a plugin; ``--junitxml``, ``--basetemp``, ``--debug``
write where the project says; ``--pastebin`` sends data out), ``pythonpath``
(the project's directories on the import path) and ``filterwarnings`` (a
filter names a warning class, which pytest imports). Others are used later
but still act in the broker (``cache_dir``, ``log_file``: files written where
the project says).

So untrusted mode needs them overridden on the trusted command line
(``-o KEY=``), which the front door (``python -m pytest_isolate.untrusted``)
does for every key here. A plain ``pytest --isolate-untrusted`` run whose
project sets one of them without such an override is refused, because
pytest has already acted on it. Pure: table-tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: Every key the broker must not take from the project, and why, in words for the user.
UNSAFE_KEYS: Mapping[str, str] = {
    "addopts": (
        "options from the project: -p would import a plugin into the broker, "
        "--junitxml/--basetemp/--debug/--log-file write where the project says, "
        "--pastebin sends data out"
    ),
    "pythonpath": "it puts the project's directories on the broker's import path",
    "filterwarnings": "a filter can name a warning class, which pytest imports in the broker",
    "cache_dir": "the broker would write its cache where the project says",
    "log_file": "the broker would write its log where the project says",
}

#: The value each key is overridden with: pytest's own default behaviour.
SAFE_VALUES: Mapping[str, str] = {
    "addopts": "",
    "pythonpath": "",
    "filterwarnings": "",
    "cache_dir": ".pytest_cache",
    "log_file": "",
}


#: The front door imports this package before pytest starts; pytest then says it cannot
#: rewrite its asserts. There are no asserts to rewrite in the broker in this mode.
REWRITE_WARNING_FILTER = (
    "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning"
)


@dataclass(frozen=True)
class IgnoredSetting:
    """One project setting untrusted mode did not honour."""

    key: str
    value: str
    why: str

    def describe(self) -> str:
        value = self.value if len(self.value) <= 200 else self.value[:200] + "..."
        return f"{self.key} = {value!r}: ignored because {self.why}"


@dataclass(frozen=True)
class SettingsVerdict:
    """What the project's ini asked for, split into ignored (overridden) and already applied."""

    ignored: tuple[IgnoredSetting, ...]
    applied_too_early: tuple[str, ...]

    def refusal(self, inipath: str) -> str:
        keys = ", ".join(self.applied_too_early)
        overrides = " ".join(f"-o {key}=" for key in self.applied_too_early)
        return (
            f"pytest-isolate: untrusted mode refused: {inipath} sets {keys}, which pytest "
            "applied before pytest-isolate was loaded (it may already have imported project "
            "code or written files). Run through the front door, which overrides these "
            "first: python -P -m pytest_isolate.untrusted --isolate-untrusted=TARGET ...; "
            f"or add {overrides} to the command line."
        )


def flatten(value: object) -> str:
    """An ini value (a string, a list from TOML, a ConfigValue) as one line of text."""
    inner = getattr(value, "value", value)
    if isinstance(inner, (list, tuple)):
        return " ".join(str(part) for part in inner)
    return str(inner)


def overridden_keys(override_ini: Iterable[str] | None) -> frozenset[str]:
    """Keys the trusted command line set with ``-o KEY=VALUE``."""
    return frozenset(
        entry.partition("=")[0].strip() for entry in override_ini or () if "=" in entry
    )


def judge_settings(raw_ini: Mapping[str, object], overridden: frozenset[str]) -> SettingsVerdict:
    """Which unsafe keys the project sets, and which of them were not overridden in time."""
    ignored = []
    too_early = []
    for key, why in UNSAFE_KEYS.items():
        if key not in raw_ini:
            continue
        text = flatten(raw_ini[key])
        if not text.strip() and key != "cache_dir":
            continue
        if key in overridden:
            ignored.append(IgnoredSetting(key, text, why))
        else:
            too_early.append(key)
    return SettingsVerdict(tuple(ignored), tuple(too_early))


def front_door_args(args: Sequence[str]) -> list[str]:
    """The command line with every unsafe key overridden first (the user's own ``-o`` win)."""
    overrides = ["-W", REWRITE_WARNING_FILTER]
    cache_off = any(a in ("no:cacheprovider", "-pno:cacheprovider") for a in args)
    for key, value in SAFE_VALUES.items():
        if key == "cache_dir" and cache_off:
            continue  # pytest would warn that the key is unknown
        overrides += ["-o", f"{key}={value}"]
    return overrides + list(args)
