"""``arch=``: tests in containers of another architecture, arm64 under qemu-user and i386 natively.

Real emulation: the arm64 image is Debian's arm64 userland (built by
``python -m pytest_isolate image build debian:bookworm --arch arm64``), run
by the engine with qemu-user-static's binfmt_misc registration. The hostile
cases of a native container (crash, timeout, memory, fork bomb, forged
frames, the baseline filter) are run there too.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import docker
import pytest
from container_project import BOOKWORM, ContainerRun, run_project, wait_no_containers
from frame_forgery import SPRAY_FRAME
from project_runner import doctor_output

from pytest_isolate.arches import ARCHES, binfmt_state
from pytest_isolate.policy.engine_profile import engine_profile

#: An image of the machine's architecture under a name the builder does not own; one per
#: process, since each xdist worker that runs this module tags (and removes) its own.
NATIVE_ONLY = f"isolate-test/native-only:pid{os.getpid()}"

PROJECT = (
    """
import ctypes, os, platform, struct, time
import pytest
from pytest_isolate import isolate
"""
    + SPRAY_FRAME
    + """

ARM = dict(arch="arm64", timeout=20, pids_limit=64, mem_limit="256M")


@isolate("container", **ARM)
def test_arm64_is_aarch64():
    assert platform.machine() == "aarch64"
    assert struct.calcsize("P") == 8


@isolate("container", arch="i386")
def test_i386_is_32_bit():
    assert struct.calcsize("P") == 4


@isolate("container", **ARM)
def test_arm64_crash_is_named():
    os.kill(os.getpid(), 11)


@isolate("container", **{**ARM, "timeout": 3})
def test_arm64_timeout():
    time.sleep(60)


@isolate("container", **ARM)
def test_arm64_memory_hog():
    hog = b"x" * (1 << 30)  # written, so it is really used (qemu-user ignores RLIMIT_AS)
    assert hog


@isolate("container", **ARM)
def test_arm64_fork_bomb_is_bounded_by_the_pids_limit():
    children = 0
    try:
        while children < 10_000:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
            children += 1
    except OSError:
        pass
    print("FORKED", children)
    assert children < 64


@isolate("container", **ARM)
def test_arm64_forged_report_frame():
    spray_frame({"type": "report", "report": {"nodeid": "test_x.py::forged", "when": "call"}})
    time.sleep(5)


@isolate("container", **ARM)
def test_arm64_baseline_kills_a_new_user_namespace():
    ctypes.CDLL(None, use_errno=True).unshare(0x10000000)


@isolate("container", **ARM)
def test_arm64_runs_after_the_hostile_ones():
    assert platform.machine() == "aarch64"


@isolate("container", arch="arm64", seccomp={"deny": ["socket"]})
def test_arm64_with_a_seccomp_policy():
    pass


@isolate("container", arch="arm64", image="pytest-isolate/debian:trixie")
def test_arm64_image_not_built():
    pass


@isolate("container", arch="arm64", image="NATIVE_ONLY_IMAGE")
def test_arm64_image_of_the_wrong_architecture():
    pass


@isolate("container", arch="sparc")
def test_unknown_architecture():
    pass


@isolate("container", arch=["arm64", "amd64"])
def test_both(request):
    print("MACHINE", platform.machine())
"""
).replace("NATIVE_ONLY_IMAGE", NATIVE_ONLY)


@pytest.fixture(scope="module")
def native_only_tag() -> Iterator[str]:
    """The machine's image under a name that ``image_tag`` leaves alone."""
    client = docker.from_env()
    client.images.get(BOOKWORM).tag(NATIVE_ONLY)
    yield NATIVE_ONLY
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(NATIVE_ONLY, noprune=True)
    client.close()


@pytest.fixture(scope="module")
def arch_run(tmp_path_factory: pytest.TempPathFactory, native_only_tag: str) -> ContainerRun:
    run = run_project(tmp_path_factory.mktemp("arch"), {"test_arch.py": PROJECT}, "-rA")
    wait_no_containers(run.broker_pid)
    return run


@pytest.mark.parametrize(
    "test",
    [
        "test_arm64_is_aarch64",
        "test_i386_is_32_bit",
        "test_arm64_fork_bomb_is_bounded_by_the_pids_limit",
        "test_arm64_runs_after_the_hostile_ones",
        "test_both[container:pytest-isolate/debian:bookworm@arm64]",
        "test_both[container:pytest-isolate/debian:bookworm@amd64]",
    ],
)
def test_what_works_in_a_foreign_container_passes(arch_run: ContainerRun, test: str) -> None:
    assert arch_run.outcome(test) == "PASSED", arch_run.output[-4000:]


@pytest.mark.parametrize(
    ("test", "words"),
    [
        ("test_arm64_crash_is_named", "killed by signal 11 (SIGSEGV) during call"),
        ("test_arm64_timeout", "timed out after 3 s"),
        # qemu-user ignores RLIMIT_AS: the container's memory cgroup ends the test instead
        ("test_arm64_memory_hog", "killed by signal 9 (SIGKILL) during call"),
        ("test_arm64_forged_report_frame", "the target broke the protocol: report field"),
        (
            "test_arm64_baseline_kills_a_new_user_namespace",
            "killed by signal 31 (SIGSYS) during call: a forbidden syscall",
        ),
        (
            "test_arm64_with_a_seccomp_policy",
            "seccomp= cannot be enforced in an arm64 container: qemu-user refuses",
        ),
        (
            "test_arm64_image_not_built",
            "image 'pytest-isolate/debian:trixie-arm64' is not in the container engine; build it: "
            "python -m pytest_isolate image build debian:trixie --arch arm64",
        ),
        (
            "test_arm64_image_of_the_wrong_architecture",
            "' is built for amd64, not arm64 (linux/arm64)",
        ),
        ("test_unknown_architecture", "unknown architecture 'sparc'; known: amd64, i386, arm64"),
    ],
)
def test_what_fails_says_why(arch_run: ContainerRun, test: str, words: str) -> None:
    line = arch_run.summary_line(test)
    assert line.startswith(("FAILED", "ERROR")), line
    assert words in arch_run.output, arch_run.output[-6000:]


def test_the_matrix_items_name_their_architecture(arch_run: ContainerRun) -> None:
    machines = re.findall(r"^MACHINE (\S+)$", arch_run.output, re.M)
    assert sorted(machines) == ["aarch64", "x86_64"], arch_run.output[-3000:]


def test_each_architecture_has_its_line_in_the_summary(arch_run: ContainerRun) -> None:
    assert "isolate container:pytest-isolate/debian:bookworm@arm64: " in arch_run.output
    assert "isolate container:pytest-isolate/debian:bookworm@i386: " in arch_run.output


def test_the_run_leaves_no_container(arch_run: ContainerRun) -> None:
    assert arch_run.broker_pid > 0
    assert wait_no_containers(arch_run.broker_pid, timeout=5) == []


def test_the_matrix_option_spells_an_architecture_with_an_at(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    project = """
import platform

def test_where():
    print("MACHINE", platform.machine())
"""
    run = run_project(
        tmp_path_factory.mktemp("arch-matrix"),
        {"test_where.py": project},
        "--isolate-matrix=container@arm64,container",
        "-rA",
    )
    arm64 = "test_where[container:pytest-isolate/debian:bookworm@arm64]"
    assert run.outcome(arm64) == "PASSED", run.output[-3000:]
    assert run.outcome("test_where[container:pytest-isolate/debian:bookworm]") == "PASSED"
    assert sorted(re.findall(r"^MACHINE (\S+)$", run.output, re.M)) == ["aarch64", "x86_64"]


def test_a_missing_binfmt_registration_is_named_with_its_fix(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """An architecture this machine cannot run (no qemu-user registration for it) says so."""
    unregistered = [arch for arch in ARCHES.values() if binfmt_state(arch) is not None]
    if not unregistered:
        pytest.skip("every architecture in the table runs on this machine")
    arch = unregistered[0]
    project = f"""
from pytest_isolate import isolate

@isolate("container", arch="{arch.debian}")
def test_there():
    pass
"""
    run = run_project(tmp_path_factory.mktemp("no-binfmt"), {"test_there.py": project})
    line = run.summary_line("test_there")
    assert line.startswith(("FAILED", "ERROR")), line
    assert f"{arch.debian} containers cannot run here" in run.output, run.output[-3000:]
    assert f"update-binfmts --enable {arch.binfmt}" in run.output


def test_the_doctor_says_per_architecture_what_runs_and_which_image_is_built() -> None:
    doctor = doctor_output()
    assert (
        "arm64    runs under qemu-user (qemu-aarch64); "
        "image pytest-isolate/debian:bookworm-arm64: built"
    ) in doctor, doctor
    assert "i386     runs natively; image pytest-isolate/debian:bookworm-i386: built" in doctor
    for arch in ARCHES.values():
        if binfmt_state(arch) is not None:
            assert f"update-binfmts --enable {arch.binfmt}" in doctor


def test_the_engine_profile_kills_what_the_baseline_kills() -> None:
    """The profile the runtime loads for a foreign container holds the baseline's rules."""
    profile = engine_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    actions = {}
    for rule in profile["syscalls"]:
        for name in rule["names"]:
            actions.setdefault(name, set()).add(rule["action"])
    for name in ("mount", "keyctl", "bpf", "seccomp", "clone", "ioctl", "prctl"):
        assert actions[name] == {"SCMP_ACT_KILL_PROCESS"}, name
    clone_new_user = [
        rule
        for rule in profile["syscalls"]
        if rule["names"] == ["clone"] and rule["args"][0]["value"] == 0x10000000
    ]
    assert clone_new_user[0]["args"][0] == {
        "index": 0,
        "value": 0x10000000,
        "valueTwo": 0x10000000,
        "op": "SCMP_CMP_MASKED_EQ",
    }


COVERED = """
def sign(x):
    if x > 0:
        return "pos"
    return "neg"
"""

COVERAGE_TESTS = """
from pytest_isolate import isolate
import covered

@isolate("container", arch="arm64")
def test_positive_in_an_arm64_container():
    assert covered.sign(1) == "pos"

@isolate("vm", arch="arm64")
def test_negative_in_an_arm64_guest():
    assert covered.sign(-1) == "neg"
"""


def test_coverage_from_arm64_targets_lands_on_the_hosts_files(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Each target measures its line; the broker maps both onto the project's file: 100%."""
    run = run_project(
        tmp_path_factory.mktemp("arch-coverage"),
        {"covered.py": COVERED, "test_covered.py": COVERAGE_TESTS},
        "--cov=covered",
        "--cov-report=term-missing",
    )
    assert "2 passed" in run.output, run.output[-3000:]
    assert re.search(r"^covered\.py\s+4\s+0\s+100%", run.output, re.M), run.output[-2000:]
