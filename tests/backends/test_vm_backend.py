"""The ``vm`` backend: its pure decisions, then one real run of a small project in QEMU.

The real run boots real guests (TCG here), so it is a single pytest
subprocess whose tests share one VM; one of them has its QEMU killed while
it runs (a guest dying mid-test), and the test after it must get a new VM.
The project lives under /tmp, where the guest has its own tmpfs: the share
must land on top of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_isolate.backends.vm import (
    DEFAULT_MEMORY_MIB,
    MAX_NODEID_ARGS,
    GuestShape,
    VMBackend,
    agent_config,
    collection_args,
    guest_end_words,
    guest_shape,
    parse_memory_mib,
)
from pytest_isolate.spec import IsolateSpec, SpecError


def vm_spec(**options: object) -> IsolateSpec:
    return IsolateSpec(backend="vm").with_options(**options)


# -- pure decisions -------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "mib"),
    [(None, DEFAULT_MEMORY_MIB), (512, 512), ("2G", 2048), ("768M", 768), ("1.5g", 1536)],
)
def test_memory_is_mib_as_int_or_a_size_string(value: object, mib: int) -> None:
    assert parse_memory_mib(value, "t") == mib


@pytest.mark.parametrize("value", [True, 32, "10M", "lots", -1])
def test_memory_too_small_or_not_a_size_is_a_usage_error(value: object) -> None:
    with pytest.raises(SpecError, match="t: "):
        parse_memory_mib(value, "t")


def test_shape_reads_every_vm_keyword() -> None:
    spec = vm_spec(
        kernel="/boot/vmlinuz", accel="tcg", memory="2G", cpus=2, machine="q35", cpu="max,-la57"
    )
    assert guest_shape(spec, "t") == GuestShape("/boot/vmlinuz", "tcg", 2048, 2, "q35", "max,-la57")
    assert agent_config(guest_shape(spec, "t"), "/py", "/pkg", ["/p"], "/p").cpu == "max,-la57"


def test_specs_differing_only_in_per_test_limits_share_a_guest() -> None:
    a = IsolateSpec(backend="vm", timeout=3.0, mem_limit=1 << 28, env=(("A", "1"),))
    b = IsolateSpec(backend="vm", cpu_limit=5.0)
    assert guest_shape(a, "t") == guest_shape(b, "t") == GuestShape()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (IsolateSpec(backend="vm", network=True), "no network device"),
        (IsolateSpec(backend="vm", seccomp=(("deny", ("no_such_call",)),)), "no_such_call"),
        (vm_spec(accel="hvf"), "valid values: auto, kvm, tcg"),
        (vm_spec(machine="pc"), "valid values: auto, microvm, q35"),
        (vm_spec(cpus=0), "cpus=0"),
        (vm_spec(cpus=True), "cpus=True"),
        (vm_spec(kernel="vmlinuz"), "absolute path"),
        (vm_spec(cpu="max -enable-kvm"), "not a QEMU CPU model"),
        (vm_spec(cpu=3), "not a QEMU CPU model"),
    ],
)
def test_what_a_guest_cannot_honour_is_a_usage_error(spec: IsolateSpec, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        VMBackend().validate(spec, "test_x.py::test_y")


def test_agent_config_shares_project_and_package_and_nothing_of_the_broker_env() -> None:
    config = agent_config(
        GuestShape(memory_mib=512), "/py/bin/python3", "/src/pytest_isolate", ["/proj"], "/proj"
    )
    assert config.command == ("/py/bin/python3", "-m", "pytest_isolate.agent")
    assert config.shares == ("/proj", "/src/pytest_isolate")
    env = dict(config.env)
    assert env["PYTHONPATH"] == "/src"
    assert set(env) == {"HOME", "LC_ALL", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH"}
    assert (config.cwd, config.memory_mib) == ("/proj", 512)


def test_collection_args_load_the_plugin_and_name_the_tests() -> None:
    args = collection_args(["a.py::t", "a.py::t", "b.py::u[vm]"], "/proj", "/proj/tox.ini")
    assert args[:2] == ["-p", "pytest_isolate.plugin"]
    assert args[-4:] == ["-c", "/proj/tox.ini", "/proj/a.py::t", "/proj/b.py::u[vm]"]


def test_too_many_node_ids_collapse_to_their_files() -> None:
    nodeids = [f"m{i % 3}.py::t{i}" for i in range(MAX_NODEID_ARGS + 1)]
    assert collection_args(nodeids, "/p", None)[-3:] == ["/p/m0.py", "/p/m1.py", "/p/m2.py"]


@pytest.mark.parametrize(
    ("tail", "status", "words"),
    [
        ("...\nKernel panic - not syncing: sysrq triggered crash\n---[ end", 0, "panicked (Kernel"),
        ("booting", None, "stopped answering"),
        ("booting", -9, "exited with status -9"),
        (
            "traps: python3[1] trap invalid opcode ip:7f\nKernel panic - not syncing: Attempted"
            " to kill init!",
            0,
            "pass cpu='max'",
        ),
    ],
)
def test_why_a_guest_went_away_is_said_in_words(tail: str, status: int | None, words: str) -> None:
    assert words in guest_end_words(tail, status)


def test_availability_lists_the_doctor_checks() -> None:
    availability = VMBackend().availability()
    assert availability, availability.reason
    assert {"qemu", "kernel", "busybox"} <= {check for check, _ in availability.details}


# -- one real run -----------------------------------------------------------------
CONFTEST = """
import json, os, signal, threading, time

LOG = os.environ.get("VMTEST_LOG")  # set on the host only: the guest gets no broker env


def _qemu_children():
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                name, rest = handle.read().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        if "qemu" in name and int(rest.split()[1]) == os.getpid():
            found.append(int(entry))
    return found


def _log(**event):
    with open(LOG, "a") as handle:
        handle.write(json.dumps(dict(event, t=time.monotonic(), qemu=_qemu_children())) + "\\n")


def pytest_runtest_logstart(nodeid, location):
    if not LOG:
        return
    _log(event="start", nodeid=nodeid)
    if nodeid.endswith("test_guest_dies_mid_test"):
        def kill_qemu():
            time.sleep(3)  # the test is sleeping in the guest by then
            for pid in _qemu_children():
                os.kill(pid, signal.SIGKILL)
        threading.Thread(target=kill_qemu, daemon=True).start()
    if nodeid.endswith("test_guest_kernel_hangs_mid_test"):
        def freeze_qemu():  # as a hung guest kernel looks from outside: no progress at all
            time.sleep(3)
            for pid in _qemu_children():
                os.kill(pid, signal.SIGSTOP)
        threading.Thread(target=freeze_qemu, daemon=True).start()


def pytest_runtest_logreport(report):
    if LOG and report.when == "call" or (LOG and report.failed):
        _log(event="result", nodeid=report.nodeid, outcome=report.outcome)
"""

PROJECT_TESTS = """
import ctypes, errno, os, sys, time
from pytest_isolate import isolate

pytestmark = isolate("vm")
HERE = os.path.dirname(os.path.abspath(__file__))


def test_passes_and_prints_the_guest_python():
    print("guest python:", sys.version)


def test_fails_like_on_the_host():
    assert 1 + 1 == 3


def test_segfault_is_reported_by_signal():
    ctypes.string_at(0)


@isolate("vm", timeout=3)
def test_hang_times_out_and_is_killed():
    time.sleep(120)


def test_host_secret_under_root_is_invisible():
    assert os.path.exists(os.path.join(HERE, "conftest.py"))
    assert not os.path.exists(SECRET)


def test_project_is_read_only():
    try:
        open(os.path.join(HERE, "open-to-all", "written"), "w")
    except OSError as exc:
        assert exc.errno == errno.EROFS, exc
    else:
        raise AssertionError("the project was writable")


def test_only_loopback_network():
    assert os.listdir("/sys/class/net") == ["lo"]


def test_leaves_a_daemon():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(600)
        os._exit(0)
    os.wait()


def test_no_process_of_an_earlier_test_is_left():
    others = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in (1, os.getpid()):
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if handle.read():  # kernel threads have no command line
                    others.append(entry)
    assert others == []


@isolate("vm", seccomp="default")
def test_seccomp_denies_an_inet_socket_in_the_guest():
    import socket
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)


@isolate("vm", seccomp={"policy": "default", "on_violation": "kill"})
def test_seccomp_kill_mode_in_the_guest():
    import socket
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("REACHED AFTER THE DENIED CALL")


@isolate("vm", seccomp="default")
def test_seccomp_baseline_kill_is_named_from_the_guest_kernel_log():
    ctypes.CDLL(None).mount(b"none", b"/tmp", b"tmpfs", 0, None)


@isolate("vm", seccomp="default")
def test_seccomp_allows_ordinary_work_in_the_guest(tmp_path):
    import socket, subprocess
    (tmp_path / "f").write_text("x")
    assert subprocess.run(["/bin/true"]).returncode == 0
    a, b = socket.socketpair()
    a.send(b"x")
    assert b.recv(1) == b"x"


def test_quick_1():
    pass


def test_quick_2():
    pass


def test_quick_3():
    pass


@isolate("vm", kernel="/nonexistent/vmlinuz")
def test_missing_kernel():
    pass


def test_guest_dies_mid_test():
    time.sleep(60)


def test_after_a_dead_guest_a_new_one_runs():
    pass


def test_guest_kernel_hangs_mid_test():
    time.sleep(120)


def test_after_a_hung_guest_a_new_one_runs():
    pass


def _print_guest_identity():
    with open("/proc/sys/kernel/random/boot_id") as handle:
        boot_id = handle.read().strip()
    print("fresh guest:", boot_id, os.urandom(16).hex(), time.time())


@isolate("vm", fresh=True)
def test_fresh_a():
    _print_guest_identity()


@isolate("vm", fresh=True)
def test_fresh_b():
    _print_guest_identity()
"""


@dataclass
class VMRun:
    output: str
    events: list[dict[str, Any]]
    project: Path
    wall: float

    def outcome(self, name: str) -> str:
        for event in self.events:
            if event["event"] == "result" and str(event["nodeid"]).endswith("::" + name):
                return str(event["outcome"])
        raise AssertionError(f"no result for {name}:\n{self.output}")

    def first(self, event: str, name: str = "") -> float:
        times = [
            float(e["t"])
            for e in self.events
            if e["event"] == event and str(e["nodeid"]).endswith(name)
        ]
        return times[0]

    def failure_text(self, name: str) -> str:
        marker = f" {name} _"  # "_ name _" for failures, "ERROR at setup of name _" too
        start = self.output.index(marker)
        end = self.output.find("\n___", start + len(marker))
        return self.output[start : end if end != -1 else None]


@pytest.fixture(scope="module")
def vm_run() -> Iterator[VMRun]:
    secret = Path("/root") / f".pytest-isolate-vm-secret-{uuid.uuid4().hex}"
    secret.write_text("host secret\n")
    project = Path(tempfile.mkdtemp(prefix="pytest-isolate-vm-", dir="/tmp"))
    try:
        project.chmod(0o755)
        (project / "open-to-all").mkdir(mode=0o777)
        (project / "open-to-all").chmod(0o777)
        (project / "conftest.py").write_text(CONFTEST)
        tests = f"SECRET = {str(secret)!r}\n" + textwrap.dedent(PROJECT_TESTS)
        (project / "test_in_vm.py").write_text(tests)
        log = project / "events.jsonl"
        # The plugin of this checkout, not whichever one is installed.
        checkout = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, VMTEST_LOG=str(log), PYTHONPATH=path)
        env.pop("PYTEST_ADDOPTS", None)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-p", "isolate"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        wall = time.monotonic() - started
        events = [json.loads(line) for line in log.read_text().splitlines()]
        yield VMRun(done.stdout + done.stderr, events, project, wall)
    finally:
        secret.unlink()
        shutil.rmtree(project, ignore_errors=True)


def test_pass_and_fail_are_reported_like_on_the_host(vm_run: VMRun) -> None:
    assert vm_run.outcome("test_passes_and_prints_the_guest_python") == "passed"
    assert vm_run.outcome("test_fails_like_on_the_host") == "failed"
    assert "assert (1 + 1) == 3" in vm_run.failure_text("test_fails_like_on_the_host")


def test_the_guest_python_version_is_printed(vm_run: VMRun) -> None:
    assert f"guest python: {sys.version.split()[0]}" in vm_run.output


def test_a_segfault_in_the_guest_fails_its_test_by_signal(vm_run: VMRun) -> None:
    assert vm_run.outcome("test_segfault_is_reported_by_signal") == "failed"
    assert "SIGSEGV" in vm_run.failure_text("test_segfault_is_reported_by_signal")


def test_a_hanging_test_times_out_and_the_guest_lives_on(vm_run: VMRun) -> None:
    assert vm_run.outcome("test_hang_times_out_and_is_killed") == "failed"
    assert "timed out after 3" in vm_run.failure_text("test_hang_times_out_and_is_killed")
    assert vm_run.outcome("test_quick_1") == "passed"


def test_host_secret_project_writes_and_network_are_out_of_reach(vm_run: VMRun) -> None:
    assert vm_run.outcome("test_host_secret_under_root_is_invisible") == "passed"
    assert vm_run.outcome("test_project_is_read_only") == "passed"
    assert not (vm_run.project / "open-to-all" / "written").exists()
    assert vm_run.outcome("test_only_loopback_network") == "passed"


def test_a_daemon_left_in_the_guest_is_killed_before_the_next_test(vm_run: VMRun) -> None:
    assert vm_run.outcome("test_leaves_a_daemon") == "passed"
    assert vm_run.outcome("test_no_process_of_an_earlier_test_is_left") == "passed"


def test_the_terminal_says_which_accelerator_and_shows_boot_progress(vm_run: VMRun) -> None:
    assert "pytest-isolate: vm accelerator " in vm_run.output
    assert "pytest-isolate: vm [  0.0 s] booting (" in vm_run.output
    assert "test(s) collected in the guest" in vm_run.output


def test_tests_share_one_guest_until_it_dies_or_hangs(vm_run: VMRun) -> None:
    # At each shared test's start: the guests of the next fresh tests start only once it runs.
    shared = [
        e
        for e in vm_run.events
        if e["event"] == "start" and e["qemu"] and "fresh" not in str(e["nodeid"])
    ]
    qemus = {tuple(e["qemu"]) for e in shared}
    # the first guest, the one after its death, the one after the hung one
    assert len(qemus) == 3, qemus
    assert vm_run.output.count("test(s) collected in the guest") == 3
    # ... and one guest for each fresh=True test, both started (silently) while the test
    # before them ran: at test_fresh_a's start, its guest and the next one's are up, beside
    # the shared guest (kept until the run ends).
    at_fresh_a = next(e for e in vm_run.events if e["nodeid"].endswith("test_fresh_a"))
    assert len(at_fresh_a["qemu"]) == 3, at_fresh_a


def test_fresh_guests_are_restored_each_with_its_own_rng_and_clock(vm_run: VMRun) -> None:
    assert vm_run.outcome("test_fresh_a") == "passed"
    assert vm_run.outcome("test_fresh_b") == "passed"
    assert "restored the saved guest in" in vm_run.output, [
        line for line in vm_run.output.splitlines() if "pytest-isolate: vm" in line
    ]
    seen = re.findall(r"fresh guest: (\S+) (\S+) (\S+)", vm_run.output)
    assert len(seen) == 2, vm_run.output
    (boot_a, random_a, time_a), (boot_b, random_b, time_b) = seen
    assert boot_a != boot_b
    assert random_a != random_b
    for guest_time in (time_a, time_b):  # the guests' clocks, not the snapshot's
        assert abs(float(guest_time) - time.time()) < vm_run.wall + 5


def test_a_guest_dying_mid_test_fails_that_test_with_its_console(vm_run: VMRun) -> None:
    assert vm_run.outcome("test_guest_dies_mid_test") == "failed"
    text = vm_run.failure_text("test_guest_dies_mid_test")
    assert text.count("QEMU exited with status -9") == 1
    assert "the VM was destroyed" in text
    assert "guest console (tail)" in text
    assert vm_run.outcome("test_after_a_dead_guest_a_new_one_runs") == "passed"


def test_a_missing_kernel_fails_its_test_naming_the_fix(vm_run: VMRun) -> None:
    assert vm_run.outcome("test_missing_kernel") == "failed"
    text = vm_run.failure_text("test_missing_kernel")
    assert "the VM could not be started" in text
    assert "/nonexistent/vmlinuz" in text


def test_seccomp_policies_apply_inside_the_guest(vm_run: VMRun) -> None:
    """The broker's compiled filter, loaded by the agent in the test's child in the guest."""
    name = "test_seccomp_denies_an_inet_socket_in_the_guest"
    assert vm_run.outcome(name) == "failed"
    assert "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 0) [@inet]" in vm_run.failure_text(name)
    name = "test_seccomp_kill_mode_in_the_guest"
    assert vm_run.outcome(name) == "failed"
    assert "(target killed)" in vm_run.failure_text(name)
    assert "REACHED AFTER THE DENIED CALL" not in vm_run.output
    name = "test_seccomp_baseline_kill_is_named_from_the_guest_kernel_log"
    assert vm_run.outcome(name) == "failed"
    assert "killed for forbidden syscall mount under the always-on baseline" in (
        vm_run.failure_text(name)
    )
    assert vm_run.outcome("test_seccomp_allows_ordinary_work_in_the_guest") == "passed"


def test_no_qemu_outlives_the_run(vm_run: VMRun) -> None:
    pids = {pid for e in vm_run.events for pid in e["qemu"]}
    assert pids
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


def test_timing_first_result_and_per_further_test(vm_run: VMRun) -> None:
    """Not a benchmark: records the numbers and catches a VM booted per test."""
    first = vm_run.first("result") - vm_run.first("start")
    quick = [vm_run.first("result", f"test_quick_{n}") for n in (1, 2, 3)]
    per_test = (quick[2] - quick[0]) / 2
    print(f"first result {first:.1f} s, further tests {per_test * 1000:.0f} ms each")
    assert per_test < 2.0


def test_a_hung_guest_is_detected_by_its_silence_and_replaced(vm_run: VMRun) -> None:
    assert vm_run.outcome("test_guest_kernel_hangs_mid_test") == "failed"
    text = vm_run.failure_text("test_guest_kernel_hangs_mid_test")
    assert "stopped answering" in text, text
    assert vm_run.outcome("test_after_a_hung_guest_a_new_one_runs") == "passed"
