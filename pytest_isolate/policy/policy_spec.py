"""What the user asked for: a validated, hashable seccomp policy specification.

Pure: no OS access. The broker caches one compiled filter per distinct
``PolicySpec``, so specs are normalised (names deduplicated and sorted) to
make equal requests compare equal.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from pytest_isolate.policy.groups import group_names, is_known_name, known_syscalls

PRESETS = ("default", "strict", "permissive")
ON_VIOLATION = ("errno", "kill")


class PolicyError(ValueError):
    """A policy option is invalid; the message names the value and the valid choices."""


def _choices(values: Iterable[str]) -> str:
    return ", ".join(repr(value) for value in values)


def _unknown_name_message(option: str, name: str) -> str:
    if name.startswith("@"):
        return f"{option}: unknown syscall group {name!r}; valid groups: {_choices(group_names())}"
    close = difflib.get_close_matches(name, sorted(known_syscalls()), n=3)
    hint = f"; did you mean {_choices(close)}?" if close else ""
    return (
        f"{option}: unknown syscall {name!r}{hint} "
        f"(a syscall name or one of the groups {_choices(group_names())})"
    )


def _names(option: str, value: object) -> tuple[str, ...]:
    """Normalise ``deny=``/``allow=``: a name or an iterable of names -> sorted tuple."""
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        raise PolicyError(
            f"{option}: expected a syscall name, a @group or a list of them, "
            f"got {type(value).__name__} {value!r}"
        )
    names: set[str] = set()
    for item in items:
        if not isinstance(item, str) or not item:
            raise PolicyError(
                f"{option}: every entry must be a non-empty syscall name or @group, got {item!r}"
            )
        if not is_known_name(item):
            raise PolicyError(_unknown_name_message(option, item))
        names.add(item)
    return tuple(sorted(names))


def _choice(option: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise PolicyError(f"{option}: unknown value {value!r}; valid choices: {_choices(choices)}")
    return value


@dataclass(frozen=True)
class PolicySpec:
    """A seccomp policy: a preset, extra denials, an optional allow-list, what a violation does.

    - ``preset``: ``"default"`` (baseline + no socket() of any family),
      ``"strict"`` (default + no execve/execveat), ``"permissive"`` (baseline only).
    - ``deny``: extra syscall names or ``@groups`` denied (reported, answered per
      ``on_violation``).
    - ``allow``: when not None, allow-list mode: only these (plus a small floor
      the runner needs, see ``plan.ALLOW_LIST_FLOOR``) may run; ``deny`` still
      wins over ``allow``, the preset's own denials are replaced by the allow-list.
    - ``on_violation``: ``"errno"`` answers EPERM, ``"kill"`` kills the target.

    The baseline (mount, modules, bpf, ptrace, new namespaces, ...) is always
    enforced with a kernel-side kill, whatever ``allow`` says.
    """

    preset: str = "default"
    deny: tuple[str, ...] = ()
    allow: tuple[str, ...] | None = None
    on_violation: str = "errno"

    def __post_init__(self) -> None:
        _choice("policy", self.preset, PRESETS)
        _choice("on_violation", self.on_violation, ON_VIOLATION)
        if not isinstance(self.deny, tuple) or _names("deny", self.deny) != self.deny:
            raise PolicyError(
                f"deny: expected a sorted tuple of distinct known names, got {self.deny!r} "
                "(use PolicySpec.from_options to normalise)"
            )
        if self.allow is not None and (
            not isinstance(self.allow, tuple) or _names("allow", self.allow) != self.allow
        ):
            raise PolicyError(
                f"allow: expected None or a sorted tuple of distinct known names, "
                f"got {self.allow!r} (use PolicySpec.from_options to normalise)"
            )

    @classmethod
    def from_options(
        cls,
        policy: object = None,
        deny: object = None,
        allow: object = None,
        on_violation: object = None,
    ) -> PolicySpec:
        """Build a spec from marker/CLI/ini values; ``None`` means "not given"."""
        return cls(
            preset=_choice("policy", "default" if policy is None else policy, PRESETS),
            deny=() if deny is None else _names("deny", deny),
            allow=None if allow is None else _names("allow", allow),
            on_violation=_choice(
                "on_violation", "errno" if on_violation is None else on_violation, ON_VIOLATION
            ),
        )

    @property
    def allow_list_mode(self) -> bool:
        return self.allow is not None
