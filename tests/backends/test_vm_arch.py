"""``isolate("vm", arch="arm64")``: a real arm64 guest under TCG, with Debian's arm64 kernel.

The kit (kernel, busybox, userland) is the one ``python -m pytest_isolate vm
fetch --arch arm64`` put in the cache (``scripts/setup-machine`` does it).
One run of a small project boots one arm64 guest and runs the checks in it:
the machine, a crash, a timeout, a memory hog, a seccomp policy compiled for
arm64 whose denial is named, and an ``arch=`` matrix beside the machine's
own guest.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from project_runner import ProjectRun, doctor_output, run_pytest, write_project

from pytest_isolate.backends.vm import guest_shape
from pytest_isolate.policy.compiler import compile_policy
from pytest_isolate.policy.policy_spec import PolicySpec
from pytest_isolate.spec import IsolateSpec, SpecError
from pytest_isolate.vm.foreign_kit import find_kit

PROJECT = """
import os, platform, socket, struct, time
from pytest_isolate import isolate

ARM = dict(arch="arm64", timeout=60)


@isolate("vm", **ARM)
def test_the_guest_is_arm64():
    assert platform.machine() == "aarch64"
    assert platform.release().endswith("-arm64")
    assert struct.calcsize("P") == 8


@isolate("vm", **ARM)
def test_crash_is_named():
    os.kill(os.getpid(), 11)


@isolate("vm", **{**ARM, "timeout": 5})
def test_timeout():
    time.sleep(120)


@isolate("vm", **ARM, mem_limit="128M")
def test_memory_hog():
    hog = bytearray(1 << 30)
    assert hog


@isolate("vm", **ARM, seccomp="default")
def test_inet_socket_is_denied_and_named():
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)


@isolate("vm", **ARM, seccomp="default")
def test_an_allowed_call_works_under_the_policy():
    os.getpid()


@isolate("vm", arch=["amd64", "arm64"])
def test_each_guest(request):
    print("MACHINE", platform.machine())
"""


MISSING_KIT_TEST = """
from pytest_isolate import isolate

@isolate("vm", arch="arm64")
def test_k():
    pass
"""


@pytest.fixture(scope="module")
def arm64_run(tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    project = write_project(tmp_path_factory.mktemp("vm-arch"), {"test_arm.py": PROJECT})
    project.chmod(0o755)
    return run_pytest(project, "-p", "no:randomly", "-rA", xdist=False, timeout=900)


@pytest.mark.parametrize(
    "test",
    [
        "test_the_guest_is_arm64",
        "test_an_allowed_call_works_under_the_policy",
        "test_each_guest[vm@amd64]",
        "test_each_guest[vm@arm64]",
    ],
)
def test_what_works_in_an_arm64_guest_passes(arm64_run: ProjectRun, test: str) -> None:
    assert arm64_run.outcome(test) == "PASSED", arm64_run.output[-5000:]


@pytest.mark.parametrize(
    ("test", "words"),
    [
        ("test_crash_is_named", "killed by signal 11 (SIGSEGV) during call"),
        ("test_timeout", "timed out after 5 s"),
        ("test_memory_hog", "MemoryError"),
        (
            "test_inet_socket_is_denied_and_named",
            "forbidden syscall socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 0) [@inet] "
            "under policy 'default'",
        ),
    ],
)
def test_what_fails_in_an_arm64_guest_says_why(
    arm64_run: ProjectRun, test: str, words: str
) -> None:
    line = arm64_run.summary_line(test)
    assert line.startswith("FAILED"), line
    assert words in arm64_run.output, arm64_run.output[-5000:]


def test_each_architecture_has_its_own_guest_and_summary_line(arm64_run: ProjectRun) -> None:
    machines = re.findall(r"^MACHINE (\S+)$", arm64_run.output, re.M)
    assert sorted(machines) == ["aarch64", "x86_64"], arm64_run.output[-3000:]
    assert re.search(r"^isolate vm@arm64: \d+ tests, ", arm64_run.output, re.M)
    assert re.search(r"^isolate vm@amd64: 1 test, ", arm64_run.output, re.M)


def test_the_arm64_guest_was_ready_within_a_minute(arm64_run: ProjectRun) -> None:
    started = re.search(
        r"^isolate vm@arm64: .* 1 target started in ([0-9.]+) s", arm64_run.output, re.M
    )
    assert started is not None, arm64_run.output[-3000:]
    assert float(started.group(1)) < 60


def test_a_missing_kit_names_the_command_that_fetches_it(tmp_path: Path) -> None:
    """With an empty cache there is no arm64 kernel: the test fails with the fix."""
    project = write_project(
        tmp_path / "project",
        {"test_k.py": MISSING_KIT_TEST},
    )
    project.chmod(0o755)
    run = run_pytest(
        project, "-rA", env={"PYTEST_ISOLATE_CACHE": str(tmp_path / "empty-cache")}, xdist=False
    )
    assert run.outcome("test_k") in ("FAILED", "ERROR"), run.output[-3000:]
    assert "fetch them: python -m pytest_isolate vm fetch --arch arm64" in run.output


def test_the_kit_is_in_the_cache() -> None:
    kit = find_kit("arm64")
    assert kit is not None
    assert Path(kit.userland, "usr", "bin", "python3").exists()
    assert Path(kit.modules_root, "lib", "modules", kit.release, "modules.dep").exists()


def test_a_filter_for_an_arm64_kernel_has_its_numbers_and_audit_architecture() -> None:
    """Never the machine's: an x86-64 filter in an arm64 guest would kill every call."""
    native, arm64 = compile_policy(PolicySpec()), compile_policy(PolicySpec(), "arm64")
    assert (native.seccomp_nr, arm64.seccomp_nr) == (317, 277)
    audit_arch_aarch64 = (0xC00000B7).to_bytes(4, "little")
    assert audit_arch_aarch64 in arm64.programs[0]
    assert audit_arch_aarch64 not in native.programs[0]


@pytest.mark.parametrize(
    ("arch", "words"),
    [
        ("sparc", "unknown architecture 'sparc'"),
        ("armhf", "vm guests can be amd64, arm64"),
    ],
)
def test_an_architecture_without_guests_is_a_usage_error(arch: str, words: str) -> None:
    with pytest.raises(SpecError, match=re.escape(words)):
        guest_shape(IsolateSpec(backend="vm").with_options(arch=arch), "t")


def test_kvm_cannot_run_an_emulated_guest() -> None:
    spec = IsolateSpec(backend="vm").with_options(arch="arm64", accel="kvm")
    with pytest.raises(SpecError, match="cannot run an arm64 guest here"):
        guest_shape(spec, "t")


def test_the_doctor_says_whether_the_arm64_kit_is_there(tmp_path: Path) -> None:
    kit = find_kit("arm64")
    assert kit is not None
    assert f"arm64    ok: kernel {kit.release} and userland fetched" in doctor_output()
    empty = doctor_output({"PYTEST_ISOLATE_CACHE": str(tmp_path)})
    assert (
        "arm64    UNAVAILABLE: kernel and userland missing; "
        "fetch them: python -m pytest_isolate vm fetch --arch arm64"
    ) in empty, empty
