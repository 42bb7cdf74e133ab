"""Reading seccomp kill records from the kernel log."""

from __future__ import annotations

import pytest

from pytest_isolate.policy import find_kernel_kill, kmsg_position
from pytest_isolate.policy.kmsg import SeccompKill, parse_seccomp_record

KILL_RECORD = (
    "5,341,315357560,-;audit: type=1326 audit(1795930472.197:2): auid=4294967295 uid=65534 "
    'gid=65534 ses=4294967295 pid=2634 comm="python" exe="/usr/bin/python3" sig=31 '
    "arch=c000003e syscall=165 compat=0 ip=0x7f2473327e5a code=0x80000000\n"
)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (KILL_RECORD, SeccompKill(sequence=341, pid=2634, arch=0xC000003E, syscall=165)),
        (KILL_RECORD.replace("sig=31", "sig=0"), None),  # logged, not killed
        (KILL_RECORD.replace("type=1326", "type=1400"), None),  # another audit type
        ("6,12,100,-;usb 1-1: new device\n", None),
        (KILL_RECORD.replace("syscall=165", "syscall=x"), None),
        ("garbage", None),
        ('5,7,1,-;audit: type=1326 comm="pid=1 syscall=2" sig=31\n', None),  # no real fields
        (
            KILL_RECORD.replace('comm="python"', 'comm="pid=1"'),  # a forged pid in comm
            SeccompKill(sequence=341, pid=2634, arch=0xC000003E, syscall=165),
        ),
    ],
)
def test_kill_records_are_parsed_and_everything_else_ignored(record, expected):
    assert parse_seccomp_record(record) == expected


def test_the_kmsg_position_only_grows():
    first = kmsg_position()
    assert first > 0
    assert kmsg_position() >= first


def test_no_kill_found_for_a_pid_that_was_never_killed():
    assert find_kernel_kill({2**22 + 1}, since=0, timeout=0) is None
