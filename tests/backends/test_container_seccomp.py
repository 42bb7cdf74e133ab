"""``seccomp=`` inside a container: the agent loads the broker's filter in each test's child.

One real run over a hostile project; each test below asserts one claim of
its report. The same agent code serves the vm backend, whose claims are
asserted in ``test_vm_backend.py`` on a real guest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from container_project import BOOKWORM, ProjectRun, run_project, wait_no_containers

PROJECT = """
import ctypes, os, socket, struct, subprocess
import pytest
from pytest_isolate import isolate

libc = ctypes.CDLL(None, use_errno=True)
IMAGE = "{image}"


def _channel_fd():
    # The child's private socket to the agent: the only unix socket it holds.
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{{name}}").startswith("socket:"):
                return int(name)
        except OSError:
            pass
    raise AssertionError("no socket")


def _frame(message):
    import json
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body


@isolate("container", image=IMAGE, seccomp="default")
def test_inet_socket_is_denied_and_named():
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)


@isolate("container", image=IMAGE, seccomp={{"policy": "default", "fail_on_violation": False}})
def test_a_denial_is_eperm_and_may_be_allowed():
    with pytest.raises(PermissionError):
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)


@isolate("container", image=IMAGE, seccomp={{"policy": "default", "on_violation": "kill"}})
def test_kill_mode_stops_the_test_at_the_call():
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("REACHED AFTER THE DENIED CALL")


@isolate("container", image=IMAGE, seccomp="default")
def test_the_baseline_kills_a_mount():
    libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)


@isolate("container", image=IMAGE, seccomp="default")
def test_a_second_filter_cannot_be_loaded():
    libc.prctl(22, 2, 0)  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


@isolate("container", image=IMAGE, seccomp="strict")
def test_strict_denies_exec():
    subprocess.run(["/bin/true"])


@isolate("container", image=IMAGE, seccomp={{"deny": ["chmod", "fchmodat", "fchmodat2"]}})
def test_deny_adds_calls(tmp_path):
    (tmp_path / "f").write_text("x")
    os.chmod(tmp_path / "f", 0o600)


@isolate("container", image=IMAGE, seccomp="default")
def test_ordinary_work_passes(tmp_path):
    (tmp_path / "f").write_text("x")
    assert subprocess.run(["/bin/true"]).returncode == 0
    a, b = socket.socketpair()
    a.send(b"x")
    assert b.recv(1) == b"x"


@isolate("container", image=IMAGE, seccomp="default")
def test_the_listener_is_not_among_the_tests_descriptors():
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{{name}}")
        except OSError:
            continue
        assert "seccomp" not in target, target


@isolate("container", image=IMAGE, seccomp="default")
def test_a_second_sandboxed_frame_is_a_protocol_violation():
    os.write(_channel_fd(), _frame({{"type": "sandboxed", "listener": False}}))
    import time
    time.sleep(5)


@isolate("container", image=IMAGE)
def test_a_forged_sandboxed_frame_without_seccomp_option_is_a_protocol_violation():
    os.write(_channel_fd(), _frame({{"type": "sandboxed", "listener": False}}))
    import time
    time.sleep(5)


@isolate("container", image=IMAGE)
def test_without_seccomp_option_the_baseline_still_kills_io_uring():
    import ctypes
    params = (ctypes.c_uint8 * 120)()
    ctypes.CDLL(None, use_errno=True).syscall(425, 1, ctypes.addressof(params))


@isolate("container", image=IMAGE)
def test_without_a_policy_sockets_work():
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
"""


@pytest.fixture(scope="module")
def seccomp_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectRun]:
    project = tmp_path_factory.mktemp("container-seccomp")
    run = run_project(project, {"test_policy.py": PROJECT.format(image=BOOKWORM)})
    yield run
    wait_no_containers(run.broker_pid)


@pytest.mark.parametrize(
    ("test", "words"),
    [
        (
            "test_inet_socket_is_denied_and_named",
            "forbidden syscall socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 0) [@inet] "
            "under policy 'default'",
        ),
        ("test_kill_mode_stops_the_test_at_the_call", "killed by signal 9"),
        ("test_the_baseline_kills_a_mount", "killed for a forbidden syscall"),
        ("test_a_second_filter_cannot_be_loaded", "under the always-on baseline"),
        ("test_strict_denies_exec", "forbidden syscall execve"),
        ("test_deny_adds_calls", "chmod"),
        ("test_a_second_sandboxed_frame_is_a_protocol_violation", "said 'sandboxed' twice"),
        (
            # every container test has the baseline filter: its handover was already said
            "test_a_forged_sandboxed_frame_without_seccomp_option_is_a_protocol_violation",
            "said 'sandboxed' twice",
        ),
        (
            "test_without_seccomp_option_the_baseline_still_kills_io_uring",
            "killed for a forbidden syscall",
        ),
    ],
)
def test_what_the_policy_stops_fails_its_test_in_words(
    seccomp_run: ProjectRun, test: str, words: str
) -> None:
    line = seccomp_run.summary_line(test)
    assert line.startswith("FAILED"), line
    assert words in line, line


@pytest.mark.parametrize(
    "test",
    [
        "test_a_denial_is_eperm_and_may_be_allowed",
        "test_ordinary_work_passes",
        "test_the_listener_is_not_among_the_tests_descriptors",
        "test_without_a_policy_sockets_work",
    ],
)
def test_what_the_policy_allows_passes(seccomp_run: ProjectRun, test: str) -> None:
    assert seccomp_run.outcome(test) == "PASSED", seccomp_run.output[-4000:]


def test_kill_mode_never_reaches_the_line_after_the_call(seccomp_run: ProjectRun) -> None:
    assert "REACHED AFTER THE DENIED CALL" not in seccomp_run.output
    assert "(target killed)" in seccomp_run.output


def test_violations_are_listed_in_their_own_section(seccomp_run: ProjectRun) -> None:
    assert "seccomp violations" in seccomp_run.output
    assert "(policy 'default')" in seccomp_run.output


def test_no_container_outlives_the_run(seccomp_run: ProjectRun) -> None:
    assert wait_no_containers(seccomp_run.broker_pid) == []


def test_bad_policy_options_are_usage_errors(tmp_path: Path) -> None:
    bad = """
from pytest_isolate import isolate

@isolate("container", image="{image}", seccomp={{"deny": ["not_a_syscall"]}})
def test_typo():
    pass
"""
    run = run_project(tmp_path / "bad", {"test_bad.py": bad.format(image=BOOKWORM)})
    line = run.summary_line("test_typo")
    assert line.startswith(("ERROR", "FAILED")), line
    assert "not_a_syscall" in run.output
