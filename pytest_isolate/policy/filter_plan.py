"""Pure decisions: which rules each seccomp filter holds for a ``PolicySpec``.

A target gets two filters, because libseccomp keeps only the unconditional
rule when one syscall has both a conditional and an unconditional rule in
one filter (a user's ``deny=["clone"]`` would silently drop our
``clone(CLONE_NEW*) -> kill``):

- the *baseline* filter: hard ``KILL_PROCESS`` rules (and ``clone3 -> ENOSYS``)
  that no option can lift;
- the *policy* filter: the preset's and the user's denials as
  ``SECCOMP_RET_USER_NOTIF`` (answered by the broker, reported by name), or
  the allow-list with user notification as default action.

The kernel runs every filter and takes the action of highest precedence
(KILL > ERRNO > USER_NOTIF > ALLOW), so baseline calls never reach the
listener. The policy filter is loaded first (it creates the listener) and
always lets ``seccomp()`` through so the baseline can be loaded after it;
the baseline then kills ``seccomp()`` for good.

Every argument comparison is a masked equality on the low 32 bits: the
kernel truncates int arguments, so ``socket(2 | 1 << 32)`` is AF_INET and
must match a rule for 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pytest_isolate.policy.groups import ArgEquals, SyscallMatch, expand
from pytest_isolate.policy.policy_spec import PRESETS, PolicyError, PolicySpec

KILL = "kill"
ENOSYS = "enosys"
NOTIFY = "notify"
ALLOW = "allow"

MASK32 = 0xFFFFFFFF

#: Namespace-creating clone flags (arg0 of clone on every architecture we support).
CLONE_NEW_FLAGS: tuple[tuple[str, int], ...] = (
    ("CLONE_NEWNS", 0x00020000),
    ("CLONE_NEWCGROUP", 0x02000000),
    ("CLONE_NEWUTS", 0x04000000),
    ("CLONE_NEWIPC", 0x08000000),
    ("CLONE_NEWUSER", 0x10000000),
    ("CLONE_NEWPID", 0x20000000),
    ("CLONE_NEWNET", 0x40000000),
)
PR_SET_SECCOMP = 22
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
#: The listener's ioctls (linux/seccomp.h). A target that kept a copy of the
#: listener could answer its own notifications with "continue"; these kill it.
#: ID_VALID has two encodings (the kernel still accepts the old _IOR one).
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
SECCOMP_IOCTL_NOTIF_ID_VALID = 0x40082102
SECCOMP_IOCTL_NOTIF_ID_VALID_OLD = 0x80082102
SECCOMP_IOCTL_NOTIF_ADDFD = 0x40182103
SECCOMP_IOCTL_NOTIF_SET_FLAGS = 0x40082104
NOTIF_IOCTLS = (
    SECCOMP_IOCTL_NOTIF_RECV,
    SECCOMP_IOCTL_NOTIF_SEND,
    SECCOMP_IOCTL_NOTIF_ID_VALID,
    SECCOMP_IOCTL_NOTIF_ID_VALID_OLD,
    SECCOMP_IOCTL_NOTIF_ADDFD,
    SECCOMP_IOCTL_NOTIF_SET_FLAGS,
)

#: Killed in the kernel whatever the options say.
BASELINE_KILL_NAMES: tuple[str, ...] = (
    "@mount",  # mount, umount2, pivot_root, fsopen, move_mount, chroot, ...
    "@module",
    "@reboot",  # reboot, kexec_load, kexec_file_load
    "@swap",
    "@keyring",  # add_key, keyctl, request_key
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "seccomp",  # a nested user-notification filter could override ours
    "unshare",
    "setns",
)
BASELINE_CONDITIONAL = (
    "prctl(PR_SET_SECCOMP)",
    "clone(CLONE_NEW*)",
    "ioctl(TIOCSTI)",
    "ioctl(TIOCLINUX)",
    "ioctl(SECCOMP_IOCTL_NOTIF_*)",
)
#: clone3 passes its flags in memory a filter cannot read: answer ENOSYS so
#: glibc falls back to clone(), whose flags we can check.
BASELINE_ENOSYS = ("clone3",)

#: What each preset denies on top of the baseline (notified, reported by name).
#: ``@inet`` comes first so that an AF_INET socket is reported as ``@inet``.
PRESET_DENIALS: dict[str, tuple[str, ...]] = {
    "default": ("@inet", "socket"),
    "strict": ("@inet", "socket", "execve", "execveat"),
    "permissive": (),
}

#: Always allowed in allow-list mode so the runner can report and exit:
#: systemd's ``@default`` (without execve), signals and basic I/O.
ALLOW_LIST_FLOOR_NAMES: tuple[str, ...] = (
    "@default",
    "@signal",
    "@basic-io",
    "sendmsg",
    "recvmsg",
    "poll",
    "ppoll",
    "madvise",
    "fstat",
    "newfstatat",
    "statx",
    "seccomp",  # needed to load the baseline filter, which then kills it
)
ALLOW_LIST_FLOOR_EXCLUDED = frozenset({"execve", "execveat"})

#: Never notified, whatever ``deny`` says: the child calls them between loading
#: the filter and handing the listener to the broker (a notification then
#: would wait for an answer that can never come), and the agent talks to the
#: broker over its channel with them afterwards. Denying them could only hit
#: that channel: socket() is the call that reaches a network. ``seccomp`` is
#: needed to load the baseline after the notifying filter; the baseline kills it.
NEVER_NOTIFIED = frozenset(
    {"seccomp", "sendmsg", "sendto", "recvmsg", "recvfrom", "read", "write", "close"}
)

#: socket() families are below this; used to allow "socket except @inet".
SOCKET_FAMILY_SPACE = 64


@dataclass(frozen=True)
class ArgTest:
    """``(arg[index] & mask) == value`` with mask and value within 32 bits."""

    index: int
    mask: int
    value: int


@dataclass(frozen=True)
class Rule:
    syscall: str
    action: str
    test: ArgTest | None = None


@dataclass(frozen=True)
class FilterPlan:
    default_action: str
    rules: tuple[Rule, ...]


def _equals(arg: ArgEquals) -> ArgTest:
    return ArgTest(arg.index, MASK32, arg.value & MASK32)


def _matches(names: Iterable[str]) -> list[SyscallMatch]:
    return [match for name in names for match in expand(name)]


def _unique(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """Drop duplicates and conditional rules made redundant by an unconditional one."""
    rules = list(dict.fromkeys(rules))
    unconditional = {(rule.syscall, rule.action) for rule in rules if rule.test is None}
    kept = [r for r in rules if r.test is None or (r.syscall, r.action) not in unconditional]
    return tuple(sorted(kept, key=lambda r: (r.syscall, r.action, r.test is not None, str(r.test))))


def baseline_plan() -> FilterPlan:
    """The hard floor: kills (and clone3 -> ENOSYS) no option can lift."""
    rules = [Rule(m.syscall, KILL) for m in _matches(BASELINE_KILL_NAMES)]
    rules.append(Rule("prctl", KILL, ArgTest(0, MASK32, PR_SET_SECCOMP)))
    rules += [Rule("clone", KILL, ArgTest(0, bit, bit)) for _, bit in CLONE_NEW_FLAGS]
    rules += [
        Rule("ioctl", KILL, ArgTest(1, MASK32, request))
        for request in (TIOCSTI, TIOCLINUX, *NOTIF_IOCTLS)
    ]
    rules += [Rule(name, ENOSYS) for name in BASELINE_ENOSYS]
    return FilterPlan(ALLOW, _unique(rules))


def denied_names(spec: PolicySpec) -> tuple[str, ...]:
    """Policy words whose calls are notified: the preset's (deny-list mode) then the user's."""
    preset = () if spec.allow_list_mode else PRESET_DENIALS[spec.preset]
    return tuple(dict.fromkeys((*preset, *spec.deny)))


def policy_plan(spec: PolicySpec) -> FilterPlan | None:
    """The notifying filter, or None when the spec denies nothing beyond the baseline."""
    if spec.allow is None:
        rules = [
            Rule(m.syscall, NOTIFY, None if m.arg is None else _equals(m.arg))
            for m in _matches(denied_names(spec))
            if m.syscall not in NEVER_NOTIFIED
        ]
        return FilterPlan(ALLOW, _unique(rules)) if rules else None
    return FilterPlan(NOTIFY, _allow_rules(spec.allow, spec.deny))


def _allow_rules(allow: tuple[str, ...], deny: tuple[str, ...]) -> tuple[Rule, ...]:
    floor = [
        m for m in _matches(ALLOW_LIST_FLOOR_NAMES) if m.syscall not in ALLOW_LIST_FLOOR_EXCLUDED
    ] + [SyscallMatch(name) for name in sorted(NEVER_NOTIFIED)]
    allowed = _by_syscall([*floor, *_matches(allow)])
    denied = _by_syscall(_matches(deny))
    rules: list[Rule] = []
    for syscall, allowed_values in allowed.items():
        denied_values = denied.get(syscall, set())
        if syscall in NEVER_NOTIFIED:
            rules.append(Rule(syscall, ALLOW))
        elif None in denied_values:
            continue  # denied outright: the default action (notify) applies
        elif None in allowed_values and not denied_values:
            rules.append(Rule(syscall, ALLOW))
        else:
            values = set(range(SOCKET_FAMILY_SPACE)) if None in allowed_values else allowed_values
            rules += [
                Rule(syscall, ALLOW, ArgTest(0, MASK32, value))
                for value in sorted(v for v in values - denied_values if v is not None)
            ]
    return _unique(rules)


def _by_syscall(matches: Iterable[SyscallMatch]) -> dict[str, set[int | None]]:
    """syscall -> set of allowed arg0 values, ``None`` meaning "any value"."""
    grouped: dict[str, set[int | None]] = {}
    for match in matches:
        if match.arg is not None and match.arg.index != 0:
            raise AssertionError(f"only arg0 conditions are supported, got {match}")
        grouped.setdefault(match.syscall, set()).add(
            None if match.arg is None else match.arg.value & MASK32
        )
    return grouped


def denial_label(spec: PolicySpec, syscall: str, args: tuple[int, ...]) -> str | None:
    """The ``@group`` a notified call was denied under, or None (bare name, not allowed)."""
    for name in denied_names(spec):
        if not name.startswith("@"):
            continue
        for match in expand(name):
            if match.syscall != syscall:
                continue
            if match.arg is None or (
                len(args) > match.arg.index
                and args[match.arg.index] & MASK32 == match.arg.value & MASK32
            ):
                return name
    return None


def preset_contents(preset: str) -> dict[str, tuple[str, ...]]:
    """For docs: ``killed`` (baseline, kernel kill), ``enosys``, ``denied`` (the preset's),
    and ``never_denied`` (needed to hand the listener over; ``deny`` cannot remove them)."""
    if preset not in PRESETS:
        raise PolicyError(f"policy: unknown value {preset!r}; valid choices: {PRESETS!r}")
    return {
        "killed": (*BASELINE_KILL_NAMES, *BASELINE_CONDITIONAL),
        "enosys": BASELINE_ENOSYS,
        "denied": PRESET_DENIALS[preset],
        "never_denied": tuple(sorted(NEVER_NOTIFIED - {"seccomp"})),
    }
