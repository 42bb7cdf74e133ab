"""plan_mounts as a table: which mounts a jail gets, in which order, and who wins a path."""

from __future__ import annotations

import pytest

from pytest_isolate.jail import (
    Bind,
    Directory,
    JailConfig,
    JailError,
    MountStep,
    Symlink,
    Tmpfs,
    plan_mounts,
)

SYSTEM = ("/usr", "/bin", "/etc/passwd")
PYTHON = ("/root/.pyenv/versions/3.11.7",)


def _plan(
    config: JailConfig, system: tuple[str, ...] = SYSTEM, python: tuple[str, ...] = PYTHON
) -> list[MountStep]:
    return plan_mounts(config, system, python)


def _at(steps: list[MountStep], path: str) -> object:
    matches = [step for step in steps if step.path == path]
    assert len(matches) <= 1, matches
    return matches[0] if matches else None


def test_the_jail_root_is_a_tmpfs_and_comes_first() -> None:
    steps = _plan(JailConfig("/work/project"))
    assert steps[0] == Tmpfs("/", 0o755)


def test_parents_are_mounted_before_their_children() -> None:
    config = JailConfig("/tmp/p/project", tmp_dirs=("/tmp/p/basetemp",), writable=("/tmp/p/out",))
    paths = [step.path for step in _plan(config)]
    for index, path in enumerate(paths):
        for later in paths[index + 1 :]:
            assert not (path != "/" and path.startswith(later.rstrip("/") + "/")), (path, later)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/usr", Bind("/usr", "/usr", mirror_symlink=True)),
        ("/bin", Bind("/bin", "/bin", mirror_symlink=True)),
        ("/etc/passwd", Bind("/etc/passwd", "/etc/passwd", mirror_symlink=True)),
        ("/root/.pyenv/versions/3.11.7", Bind(PYTHON[0], PYTHON[0])),
        ("/work/project", Bind("/work/project", "/work/project")),
        ("/tmp", Tmpfs("/tmp")),
        ("/tmp/basetemp", Tmpfs("/tmp/basetemp")),
        ("/dev", Tmpfs("/dev", 0o755)),
        ("/dev/null", Bind("/dev/null", "/dev/null", device=True)),
        ("/dev/urandom", Bind("/dev/urandom", "/dev/urandom", device=True)),
        ("/dev/fd", Symlink("/dev/fd", "/proc/self/fd")),
        ("/dev/shm", Tmpfs("/dev/shm")),
        ("/proc", Directory("/proc")),
        ("/dev/tty", None),
        ("/dev/pts", None),
        ("/root", None),  # only the interpreter below it, never the home directory
        ("/var/run/docker.sock", None),
    ],
)
def test_what_a_default_jail_holds(path: str, expected: object) -> None:
    steps = _plan(JailConfig("/work/project", tmp_dirs=("/tmp/basetemp",)))
    assert _at(steps, path) == expected


@pytest.mark.parametrize(
    ("config", "path", "expected"),
    [
        (
            JailConfig("/p", binds=(("/data", "/srv/data"),)),
            "/srv/data",
            Bind("/data", "/srv/data", writable=False),
        ),
        (
            JailConfig("/p", binds=(("/data", "/srv/data"),), writable=("/srv/data",)),
            "/srv/data",
            Bind("/data", "/srv/data", writable=True),
        ),
        (JailConfig("/p", writable=("/out",)), "/out", Bind("/out", "/out", writable=True)),
        (
            JailConfig("/p", extra_readonly=("/opt/tool",)),
            "/opt/tool",
            Bind("/opt/tool", "/opt/tool"),
        ),
        # The user's choice wins over the jail's layout and over the system:
        (JailConfig("/p", writable=("/tmp",)), "/tmp", Bind("/tmp", "/tmp", writable=True)),
        (JailConfig("/p", binds=(("/alt/usr", "/usr"),)), "/usr", Bind("/alt/usr", "/usr")),
        # A writable path inside the read-only project is mounted on top of it.
        (
            JailConfig("/p", writable=("/p/build",)),
            "/p/build",
            Bind("/p/build", "/p/build", writable=True),
        ),
    ],
)
def test_what_the_user_asks_for(config: JailConfig, path: str, expected: object) -> None:
    assert _at(_plan(config), path) == expected


def test_a_read_only_path_inside_another_read_only_bind_is_not_bound_twice() -> None:
    steps = _plan(JailConfig("/work/project"), python=("/usr/lib/python3", "/work/project/src"))
    assert _at(steps, "/usr/lib/python3") is None
    assert _at(steps, "/work/project/src") is None


def test_a_read_only_path_below_a_writable_one_is_still_bound() -> None:
    steps = _plan(JailConfig("/w/project", writable=("/w",)))
    assert _at(steps, "/w/project") == Bind("/w/project", "/w/project")


def test_a_read_only_path_below_a_tmpfs_is_still_bound() -> None:
    steps = _plan(JailConfig("/tmp/project"))
    assert _at(steps, "/tmp/project") == Bind("/tmp/project", "/tmp/project")


def test_paths_are_normalized() -> None:
    steps = _plan(JailConfig("/work//project/", tmp_dirs=("/tmp/./x",)))
    assert _at(steps, "/work/project") == Bind("/work/project", "/work/project")
    assert _at(steps, "/tmp/x") == Tmpfs("/tmp/x")


@pytest.mark.parametrize(
    "config",
    [
        JailConfig("relative/project"),
        JailConfig(""),
        JailConfig("/p", tmp_dirs=("scratch",)),
        JailConfig("/p", binds=(("/a", "b"),)),
        JailConfig("/p", writable=("out",)),
        JailConfig("/p", binds=(("/a", "/"),)),
        JailConfig("/p", binds=(("/a", "/x"), ("/b", "/x"))),
        JailConfig("/p", binds=(("/a", "/x"),), tmp_dirs=("/x",)),
    ],
)
def test_impossible_requests_are_errors(config: JailConfig) -> None:
    with pytest.raises(JailError):
        _plan(config)


def test_identical_requests_are_merged() -> None:
    steps = _plan(JailConfig("/p", extra_readonly=("/p", "/data", "/data")))
    assert [step.path for step in steps].count("/data") == 1
