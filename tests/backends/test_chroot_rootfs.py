"""``isolate("chroot", rootfs=DIR)``: a real jail around a real Debian root, a spawned agent.

The root is our ``pytest-isolate/debian:bookworm`` image exported once into
the cache (``image export``). One pytest subprocess runs the hostile project
for the whole module; each test here asserts one line of it. The pure
choices (which root entries, symlinks inside the root, words for an agent
that died, the mount plan) are table-tested at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_runner import ProjectRun, run_pytest, write_project

from pytest_isolate.jail import Bind, JailConfig, Symlink, plan_mounts
from pytest_isolate.jail.foreign import (
    EXIT_JAIL_FAILED,
    EXIT_PYTHON_TOO_OLD,
    SITE_PATH,
    choose_root_entries,
    explain_agent_exit,
    resolve_in_root,
)

IMAGE = "pytest-isolate/debian:bookworm"
OLD_PYTHON = Path("/root/.pyenv/versions/3.8.18")

HOSTILE = """
import ctypes, os, signal, socket, subprocess, sys, time
import pytest
from pytest_isolate import isolate

pytestmark = isolate("chroot", rootfs="{rootfs}", timeout=10)

def test_runs_on_the_rootfs_python():
    print("PYTHON", sys.version.split()[0], sys.executable)
    assert sys.version.split()[0] == "3.11.2" and sys.executable == "/usr/bin/python3"

def test_reports_its_agent_first():
    print("AGENT", os.readlink("/proc/self/ns/pid"))

def test_reports_its_agent_second():
    print("AGENT", os.readlink("/proc/self/ns/pid"))

@isolate("chroot", rootfs="{rootfs}", fresh=True)
def test_fresh_gets_its_own_agent():
    print("AGENT", os.readlink("/proc/self/ns/pid"))

def test_root_secret_is_invisible():
    assert not os.path.exists("{secret}")
    assert not os.path.exists("/root/.pyenv")

def test_project_is_read_only():
    with pytest.raises(OSError):
        open(os.path.join(os.path.dirname(__file__), "planted.txt"), "w")

def test_rootfs_is_read_only():
    with pytest.raises(OSError):
        open("/usr/bin/planted", "w")

def test_injected_site_is_read_only():
    assert pytest.__file__.startswith("{site}/")  # pytest comes from the injected site
    with pytest.raises(OSError):
        open("{site}/planted.py", "w")

def test_only_loopback_exists():
    with open("/proc/net/dev") as fh:
        names = [line.split(":")[0].strip() for line in fh.readlines()[2:]]
    assert names == ["lo"]

def test_tcp_to_host_loopback_fails():
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", {port}), timeout=2)

def test_runs_as_nobody_without_capabilities():
    assert os.getuid() == os.geteuid() == 65534
    with open("/proc/self/status") as fh:
        caps = dict(line.split(":", 1) for line in fh if line.startswith("Cap"))
    assert int(caps["CapEff"], 16) == int(caps["CapBnd"], 16) == 0

def test_broker_environment_is_absent():
    assert all("hunter2" not in value for value in os.environ.values())

def test_new_user_namespace_is_denied():
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.unshare(0x10000000) == -1

def test_daemon_then_pass():
    subprocess.Popen(["/bin/sh", "-c", "sleep 600 # rootfs-leftover-marker"],
                     start_new_session=True)

def test_segfault():
    os.kill(os.getpid(), signal.SIGSEGV)

def test_hang():
    time.sleep(60)

def test_after_crash_and_hang_runs_on():
    assert True

@isolate("chroot", rootfs="{missing}")
def test_missing_rootfs():
    pass

@isolate("chroot", rootfs="{empty}")
def test_rootfs_without_python():
    pass

@isolate("chroot", rootfs="{old}")
def test_rootfs_with_old_python():
    pass
"""


def _cache_root() -> Path:
    return Path(os.environ.get("PYTEST_ISOLATE_CACHE") or Path.home() / ".cache" / "pytest-isolate")


@pytest.fixture(scope="module")
def rootfs() -> Path:
    """The bookworm image's file system, exported once and cached between runs."""
    from pytest_isolate.container.engine import connect_engine
    from pytest_isolate.images.export import export_rootfs

    with connect_engine() as engine:
        return export_rootfs(engine, IMAGE, _cache_root() / "rootfs" / "bookworm")


@pytest.fixture(scope="module")
def old_rootfs(rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Bookworm with a real Python 3.8 first on the agent's path (hard links: no copy).

    pyenv's 3.8 finds its libpython by RPATH, so it keeps its host path in the root.
    """
    root = tmp_path_factory.mktemp("old-root") / "root"
    subprocess.run(["cp", "-al", str(rootfs), str(root)], check=True)
    prefix = root / OLD_PYTHON.relative_to("/")
    prefix.parent.mkdir(parents=True)
    (root / "root").chmod(0o755)  # the agent runs as nobody
    subprocess.run(["cp", "-al", str(OLD_PYTHON), str(prefix)], check=True)
    (root / "usr" / "local" / "bin" / "python3").symlink_to(OLD_PYTHON / "bin" / "python3.8")
    yield root
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    yield tcp.getsockname()[1]
    tcp.close()


@pytest.fixture(scope="module")
def secret() -> Iterator[Path]:
    path = Path("/root") / f"pytest-isolate-rootfs-secret-{os.getpid()}.txt"
    path.write_text("hunter2")
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def run(
    rootfs: Path,
    old_rootfs: Path,
    listener: int,
    secret: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ProjectRun:
    empty = tmp_path_factory.mktemp("empty-root")
    project = tmp_path_factory.mktemp("rootfs-project")
    project.chmod(0o755)  # the agent reads it as nobody
    source = HOSTILE.format(
        rootfs=rootfs,
        secret=secret,
        site=SITE_PATH,
        port=listener,
        missing=empty / "missing",
        empty=empty,
        old=old_rootfs,
    )
    write_project(project, {"test_hostile.py": source})
    return run_pytest(project, "-s", env={"CI_SECRET": "hunter2"}, xdist=False)


def _printed(run: ProjectRun, word: str) -> list[str]:
    """What tests printed after ``word`` (under -s, as the terminal shows it: mid-line too)."""
    return re.findall(rf"\b{word} (\S+)", run.output)


@pytest.mark.parametrize(
    "test",
    [
        "test_runs_on_the_rootfs_python",
        "test_root_secret_is_invisible",
        "test_project_is_read_only",
        "test_rootfs_is_read_only",
        "test_injected_site_is_read_only",
        "test_only_loopback_exists",
        "test_tcp_to_host_loopback_fails",
        "test_runs_as_nobody_without_capabilities",
        "test_broker_environment_is_absent",
        "test_daemon_then_pass",
        "test_after_crash_and_hang_runs_on",
    ],
)
def test_holds_inside_the_jail(run: ProjectRun, test: str) -> None:
    assert run.outcome(test) == "PASSED", run.output[-4000:]


def test_tests_of_one_configuration_share_one_agent(run: ProjectRun) -> None:
    first, second, _fresh = _printed(run, "AGENT")
    assert first == second


def test_fresh_test_gets_an_agent_of_its_own(run: ProjectRun) -> None:
    first, _second, fresh = _printed(run, "AGENT")
    assert fresh != first  # each jail is a PID namespace of its own


def test_new_user_namespace_is_killed_by_the_seccomp_baseline(run: ProjectRun) -> None:
    line = run.summary_line("test_new_user_namespace_is_denied")
    assert "killed by signal 31 (SIGSYS)" in line and "forbidden syscall" in line


def test_segfault_is_reported_by_signal(run: ProjectRun) -> None:
    assert "killed by signal 11 (SIGSEGV)" in run.summary_line("test_segfault")


def test_hang_is_reported_as_timeout(run: ProjectRun) -> None:
    assert "timed out after 10 s" in run.summary_line("test_hang")


def test_missing_rootfs_fails_with_the_fix(run: ProjectRun) -> None:
    line = run.summary_line("test_missing_rootfs")
    assert (
        line.startswith(("FAILED", "ERROR"))
        and "is not a directory" in line
        and "image export" in line
    )


def test_rootfs_without_python_fails_with_the_fix(run: ProjectRun) -> None:
    line = run.summary_line("test_rootfs_without_python")
    assert line.startswith(("FAILED", "ERROR")) and "has no python3" in line


def test_rootfs_with_old_python_fails_with_the_fix(run: ProjectRun) -> None:
    line = run.summary_line("test_rootfs_with_old_python")
    assert line.startswith(("FAILED", "ERROR")) and "python 3.8 is too old" in line
    assert "install Python 3.9 or newer" in line


def test_secret_never_reaches_the_report(run: ProjectRun) -> None:
    assert "hunter2" not in run.output


def test_nothing_is_left_running(run: ProjectRun) -> None:
    leftovers = subprocess.run(
        ["pgrep", "-f", "rootfs-leftover-marker|runpy.run_module..pytest_isolate.agent"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert leftovers == []


def test_nothing_is_left_mounted(run: ProjectRun, rootfs: Path) -> None:
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(rootfs) not in mounts and "newroot" not in mounts


def test_project_and_rootfs_were_not_written(
    run: ProjectRun, rootfs: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert not (rootfs / "usr" / "bin" / "planted").exists()
    assert not list(Path(tmp_path_factory.getbasetemp()).glob("rootfs-project*/planted.txt"))


# -- pure ------------------------------------------------------------------
_TREE = {
    "/": [("usr", True), ("bin", False), ("dev", True), ("tmp", True), ("opt", True)],
    "/opt": [("other", True)],
    "/home": [],
}


@pytest.mark.parametrize(
    ("needed", "expected"),
    [
        ((), ("/bin", "/opt", "/usr")),
        (("/work/project",), ("/bin", "/opt", "/usr")),
        ((SITE_PATH,), ("/bin", "/opt/other", "/usr")),
        (("/opt",), ("/bin", "/usr")),
    ],
)
def test_root_entries_make_room_for_what_is_mounted(
    needed: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert choose_root_entries(lambda d: _TREE.get(d, []), needed) == expected


_LINKS = {
    "/r/usr/bin/python3": "python3.11",
    "/r/bin": "usr/bin",
    "/r/abs": "/usr/bin/python3",
    "/r/up": "../../../usr/bin/python3",
    "/r/loop": "/loop",
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/usr/bin/python3", "/usr/bin/python3.11"),
        ("/bin/python3", "/usr/bin/python3.11"),
        ("/abs", "/usr/bin/python3.11"),
        ("/up", "/usr/bin/python3.11"),
        ("/loop", None),
    ],
)
def test_symlinks_resolve_inside_the_root(path: str, expected: str | None) -> None:
    assert resolve_in_root("/r", path, _LINKS.get) == expected


@pytest.mark.parametrize(
    ("status", "stderr", "words"),
    [
        (EXIT_PYTHON_TOO_OLD << 8, "pytest-isolate: python 3.8 is too old\n", "install Python 3.9"),
        (EXIT_JAIL_FAILED << 8, "pytest-isolate: jail: mount failed", "could not be built"),
        (11, "", "killed by signal 11 (SIGSEGV)"),
        (3 << 8, "Traceback", "exited with status 3; its stderr ended with:\nTraceback"),
        (None, "", "went away"),
    ],
)
def test_agent_end_is_explained(status: int | None, stderr: str, words: str) -> None:
    assert words in explain_agent_exit(status, stderr, "/srv/root")


def test_plan_takes_system_dirs_from_the_foreign_root() -> None:
    config = JailConfig(project_dir="/work/p", root_source="/srv/root")
    steps = plan_mounts(config, ["/usr", "/bin"], [])
    assert Bind("/srv/root/usr", "/usr", mirror_symlink=True) in steps
    assert Bind("/srv/root/bin", "/bin", mirror_symlink=True) in steps
    assert Bind("/work/p", "/work/p") in steps
    assert not any(isinstance(step, Symlink) and step.path == "/usr" for step in steps)


SLEEPER = """
import subprocess
from pytest_isolate import isolate

@isolate("chroot", rootfs="{rootfs}", timeout=600)
def test_sleeps():
    subprocess.run(["/bin/sh", "-c", "sleep 600 # {marker}"])
"""


def _pids_matching(pattern: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return found.stdout.split()


def _wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_sigkilled_broker_leaves_no_jail(
    rootfs: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    marker = f"rootfs-orphan-{os.getpid()}"
    project = tmp_path_factory.mktemp("rootfs-sigkill")
    project.chmod(0o755)
    (project / "test_sleeper.py").write_text(SLEEPER.format(rootfs=rootfs, marker=marker))
    (project / "pytest.ini").write_text("[pytest]\n")
    broker = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: _pids_matching(marker), 30), "the test never started"
    finally:
        broker.kill()
        broker.wait()
    assert _wait_for(lambda: not _pids_matching(marker), 5), "the jail outlived its broker"
    assert _pids_matching("runpy.run_module..pytest_isolate.agent") == []
