"""jail_available: tried for real here, and its explanations as a table."""

from __future__ import annotations

import errno
import os

import pytest
from jail_harness import become_nobody

from pytest_isolate.jail import jail_available
from pytest_isolate.jail.jail_probe import explain, parse_trial_answer


def test_namespaces_work_on_this_machine() -> None:
    ok, why = jail_available()
    assert ok, why
    assert "works (as root)" in why


def test_namespaces_work_rootless_on_this_machine() -> None:
    """As nobody, through an unprivileged user namespace (asked in a child: we are root)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            become_nobody()
            ok, why = jail_available()
            os.write(write_end, f"{ok} {why}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 4096).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert answer.startswith("True "), answer
    assert "rootless" in answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"ok", None),
        (b"fresh /proc\x001\x00jail: ...", ("fresh /proc", 1, "jail: ...")),
        (b"namespaces\x00", ("namespaces", 0, "")),
        (b"", ("trial", 0, "")),  # the child died before answering
        (b"\xff\x00x", ("\ufffd", 0, "")),
    ],
)
def test_trial_answers(answer: bytes, expected: tuple[str, int, str] | None) -> None:
    assert parse_trial_answer(answer) == expected


@pytest.mark.parametrize(
    ("failure", "is_root", "sysctls", "ok", "words"),
    [
        (None, True, {}, True, "as root"),
        (None, False, {}, True, "rootless"),
        (
            ("user namespace", errno.EPERM, ""),
            False,
            {"unprivileged_userns_clone": 0},
            False,
            "kernel.unprivileged_userns_clone=1",
        ),
        (
            ("user namespace", errno.ENOSPC, ""),
            False,
            {"max_user_namespaces": 0},
            False,
            "user.max_user_namespaces",
        ),
        (
            ("user namespace", errno.EACCES, ""),
            False,
            {"apparmor_restrict": 1},
            False,
            "apparmor_restrict_unprivileged_userns=0",
        ),
        (("user namespace", errno.EPERM, ""), False, {}, False, "run as root"),
        (("namespaces", errno.EPERM, ""), True, {}, False, "--privileged"),
        (("jail", 0, "jail: host path missing"), True, {}, False, "host path missing"),
        (("jail", 0, "jail: host path missing"), True, {}, False, "report it"),
    ],
)
def test_explanations_name_the_fix(
    failure: tuple[str, int, str] | None,
    is_root: bool,
    sysctls: dict[str, int | None],
    ok: bool,
    words: str,
) -> None:
    result_ok, why = explain(failure, is_root, sysctls)
    assert result_ok is ok
    assert words in why
