"""Turn a denied call's raw numbers into words: ``socket(AF_INET, SOCK_STREAM, 0)``.

Pure. Arguments are taken as the kernel sees them (int arguments cut to 32
bits). Only integer arguments are decoded; pointer arguments (execve's path,
for example) are never read from the target, whose memory can change under
us and is hostile anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MASK32 = 0xFFFFFFFF

_FAMILIES: dict[int, str] = {
    0: "AF_UNSPEC",
    1: "AF_UNIX",
    2: "AF_INET",
    3: "AF_AX25",
    4: "AF_IPX",
    5: "AF_APPLETALK",
    9: "AF_X25",
    10: "AF_INET6",
    16: "AF_NETLINK",
    17: "AF_PACKET",
    21: "AF_RDS",
    26: "AF_LLC",
    29: "AF_CAN",
    30: "AF_TIPC",
    31: "AF_BLUETOOTH",
    38: "AF_ALG",
    40: "AF_VSOCK",
    44: "AF_XDP",
    45: "AF_MCTP",
}
_SOCKET_TYPES: dict[int, str] = {
    1: "SOCK_STREAM",
    2: "SOCK_DGRAM",
    3: "SOCK_RAW",
    4: "SOCK_RDM",
    5: "SOCK_SEQPACKET",
    6: "SOCK_DCCP",
    10: "SOCK_PACKET",
}
_SOCKET_TYPE_FLAGS: tuple[tuple[str, int], ...] = (
    ("SOCK_NONBLOCK", 0o4000),
    ("SOCK_CLOEXEC", 0o2000000),
)
_CLONE_FLAGS: tuple[tuple[str, int], ...] = (
    ("CLONE_NEWTIME", 0x00000080),
    ("CLONE_VM", 0x00000100),
    ("CLONE_FS", 0x00000200),
    ("CLONE_FILES", 0x00000400),
    ("CLONE_SIGHAND", 0x00000800),
    ("CLONE_PIDFD", 0x00001000),
    ("CLONE_PTRACE", 0x00002000),
    ("CLONE_VFORK", 0x00004000),
    ("CLONE_PARENT", 0x00008000),
    ("CLONE_THREAD", 0x00010000),
    ("CLONE_NEWNS", 0x00020000),
    ("CLONE_SYSVSEM", 0x00040000),
    ("CLONE_SETTLS", 0x00080000),
    ("CLONE_PARENT_SETTID", 0x00100000),
    ("CLONE_CHILD_CLEARTID", 0x00200000),
    ("CLONE_DETACHED", 0x00400000),
    ("CLONE_UNTRACED", 0x00800000),
    ("CLONE_CHILD_SETTID", 0x01000000),
    ("CLONE_NEWCGROUP", 0x02000000),
    ("CLONE_NEWUTS", 0x04000000),
    ("CLONE_NEWIPC", 0x08000000),
    ("CLONE_NEWUSER", 0x10000000),
    ("CLONE_NEWPID", 0x20000000),
    ("CLONE_NEWNET", 0x40000000),
    ("CLONE_IO", 0x80000000),
)
_SIGNALS: dict[int, str] = {
    1: "SIGHUP",
    2: "SIGINT",
    3: "SIGQUIT",
    6: "SIGABRT",
    9: "SIGKILL",
    10: "SIGUSR1",
    12: "SIGUSR2",
    15: "SIGTERM",
    17: "SIGCHLD",
    19: "SIGSTOP",
}


def socket_family(value: int) -> str:
    value &= MASK32
    return _FAMILIES.get(value, str(value))


def socket_type(value: int) -> str:
    value &= MASK32
    flag_bits = 0
    words = []
    for name, bit in _SOCKET_TYPE_FLAGS:
        if value & bit:
            flag_bits |= bit
            words.append(name)
    base = value & ~flag_bits
    words.insert(0, _SOCKET_TYPES.get(base, str(base)))
    return "|".join(words)


def flag_names(value: int, table: tuple[tuple[str, int], ...]) -> list[str]:
    """Named bits of ``value`` in ``table`` order, then any unnamed rest in hex."""
    words = [name for name, bit in table if value & bit]
    rest = value & ~sum(bit for _, bit in table)
    if rest:
        words.append(hex(rest))
    return words


def clone_flags(value: int) -> str:
    """``CLONE_NEWUSER|SIGCHLD``: clone's low byte is the exit signal, not a flag."""
    value &= MASK32
    words = flag_names(value & ~0xFF, _CLONE_FLAGS[1:])
    signal = value & 0xFF
    if signal:
        words.append(_SIGNALS.get(signal, f"signal {signal}"))
    return "|".join(words) or "0"


def unshare_flags(value: int) -> str:
    return "|".join(flag_names(value & MASK32, _CLONE_FLAGS)) or "0"


def _socket_like(args: tuple[int, ...]) -> list[str]:
    return [socket_family(args[0]), socket_type(args[1]), str(args[2])]


#: syscall -> (how many leading int arguments matter, how to render them).
_DECODERS: dict[str, tuple[int, Callable[[tuple[int, ...]], list[str]]]] = {
    "socket": (3, _socket_like),
    "socketpair": (3, _socket_like),
    "clone": (1, lambda args: [clone_flags(args[0])]),
    "unshare": (1, lambda args: [unshare_flags(args[0])]),
    "setns": (2, lambda args: [str(args[0]), unshare_flags(args[1])]),
    "ioctl": (2, lambda args: [str(args[0]), hex(args[1])]),
    "prctl": (1, lambda args: [str(args[0])]),
    "kill": (2, lambda args: [str(args[0]), _SIGNALS.get(args[1], str(args[1]))]),
}


def meaningful_args(syscall: str, raw: tuple[int, ...]) -> tuple[int, ...]:
    """The integer arguments worth reporting (cut to 32 bits); () when none are."""
    count = _DECODERS.get(syscall, (0, None))[0]
    return tuple(value & MASK32 for value in raw[:count])


def render_call(syscall: str, args: tuple[int, ...]) -> str:
    decoder = _DECODERS.get(syscall)
    if decoder is None or len(args) < decoder[0]:
        return f"{syscall}(...)"
    return f"{syscall}({', '.join(decoder[1](args))})"


@dataclass(frozen=True)
class Violation:
    """Denied calls of one kind (same syscall and reported arguments) in one target."""

    syscall: str
    args: tuple[int, ...]
    group: str | None
    count: int
    killed: bool

    def describe(self) -> str:
        """``socket(AF_INET, SOCK_STREAM, 0) [@inet]``, with ``xN`` when repeated."""
        text = render_call(self.syscall, self.args)
        if self.group:
            text += f" [{self.group}]"
        if self.count > 1:
            text += f" x{self.count}"
        if self.killed:
            text += " (target killed)"
        return text
