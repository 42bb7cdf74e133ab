"""Decoding denied calls into words, and how violations describe themselves."""

from __future__ import annotations

import pytest

from pytest_isolate.policy import Violation
from pytest_isolate.policy.decode import meaningful_args, render_call


@pytest.mark.parametrize(
    ("syscall", "raw", "expected"),
    [
        ("socket", (2, 1, 0), "socket(AF_INET, SOCK_STREAM, 0)"),
        ("socket", (2 | 1 << 32, 1, 0), "socket(AF_INET, SOCK_STREAM, 0)"),
        (
            "socket",
            (10, 2 | 0o2000000 | 0o4000, 17),
            "socket(AF_INET6, SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 17)",
        ),
        ("socket", (17, 3, 768), "socket(AF_PACKET, SOCK_RAW, 768)"),
        ("socket", (16, 3, 0), "socket(AF_NETLINK, SOCK_RAW, 0)"),
        ("socket", (1, 5, 0), "socket(AF_UNIX, SOCK_SEQPACKET, 0)"),
        ("socket", (99, 77, 0), "socket(99, 77, 0)"),
        ("socketpair", (1, 1, 0, 0xDEAD), "socketpair(AF_UNIX, SOCK_STREAM, 0)"),
        ("clone", (0x10000000 | 17, 0), "clone(CLONE_NEWUSER|SIGCHLD)"),
        ("clone", (0x00010000 | 0x100 | 0x80000, 0), "clone(CLONE_VM|CLONE_THREAD|CLONE_SETTLS)"),
        ("clone", (0,), "clone(0)"),
        ("unshare", (0x40000000 | 0x00020000,), "unshare(CLONE_NEWNS|CLONE_NEWNET)"),
        ("setns", (3, 0x20000000), "setns(3, CLONE_NEWPID)"),
        ("ioctl", (0, 0x5412, 0), "ioctl(0, 0x5412)"),
        ("kill", (1, 9), "kill(1, SIGKILL)"),
        ("execve", (0x7FFF0000, 0x7FFF1000, 0), "execve(...)"),
        ("getcwd", (0x1234, 4096), "getcwd(...)"),
    ],
)
def test_calls_render_with_decoded_integer_arguments(syscall, raw, expected):
    assert render_call(syscall, meaningful_args(syscall, raw)) == expected


def test_pointer_arguments_are_not_kept():
    assert meaningful_args("execve", (0x7FFF0000, 0x7FFF1000, 0)) == ()


def test_kept_arguments_are_cut_to_32_bits():
    assert meaningful_args("socket", (2 | 1 << 32, 1 | 1 << 40, 0)) == (2, 1, 0)


@pytest.mark.parametrize(
    ("violation", "expected"),
    [
        (
            Violation("socket", (2, 1, 0), "@inet", 1, False),
            "socket(AF_INET, SOCK_STREAM, 0) [@inet]",
        ),
        (Violation("socket", (1, 1, 0), None, 3, False), "socket(AF_UNIX, SOCK_STREAM, 0) x3"),
        (Violation("execve", (), None, 1, True), "execve(...) (target killed)"),
    ],
)
def test_violations_describe_themselves(violation, expected):
    assert violation.describe() == expected
