"""Hostile tests: a jailed test that dropped to nobody tries to get out, and cannot.

Each runs for a root broker and a rootless one (the child becomes nobody
before building its jail through a user namespace).
"""

from __future__ import annotations

import errno
import functools
import os
import pathlib
import socket
import stat
import uuid
from collections.abc import Iterator

import pytest
from conftest import HostTree
from jail_harness import errno_name, run_jailed

from pytest_isolate.jail import python_dirs
from pytest_isolate.target import syscalls

CHECKOUT = str(pathlib.Path(__file__).resolve().parents[2])


def shown_below(path: str) -> set[str]:
    """The names directly below ``path`` that the jail must show: the way to a Python dir.

    A venv made inside a checkout (``checkout/.venv``) puts that one directory,
    and nothing else of the checkout, into every jail.
    """
    prefix = path.rstrip("/") + "/"
    return {p[len(prefix) :].split("/")[0] for p in python_dirs() if p.startswith(prefix)}


@pytest.fixture
def secret_under_root() -> Iterator[str]:
    path = f"/root/.isolate-jail-secret-{uuid.uuid4().hex}"
    with open(path, "w") as handle:
        handle.write("ci-token\n")
    try:
        yield path
    finally:
        os.unlink(path)


def test_a_secret_under_root_is_invisible(
    host_tree: HostTree, rootless: bool, secret_under_root: str
) -> None:
    def body() -> dict[str, object]:
        return {"open": errno_name(lambda: open(secret_under_root).read())}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["open"] == "ENOENT"


def test_root_holds_nothing_but_the_interpreter(host_tree: HostTree) -> None:
    def body() -> dict[str, object]:
        return {"root": sorted(os.listdir("/root")), "pyenv": sorted(os.listdir("/root/.pyenv"))}

    run = run_jailed(body, host_tree.config())
    assert run.answer["root"] == [".pyenv"]
    assert run.answer["pyenv"] == ["versions"]


def test_a_file_beside_the_project_is_invisible_and_untouched(
    host_tree: HostTree, rootless: bool
) -> None:
    def body() -> dict[str, object]:
        def overwrite() -> None:
            with open(host_tree.beside, "w") as handle:
                handle.write("changed from the jail")

        return {
            "read": errno_name(lambda: open(host_tree.beside).read()),
            "write": errno_name(overwrite),
        }

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["read"] == "ENOENT"
    with open(host_tree.beside) as handle:
        assert handle.read() == "host data beside the project\n"


def test_the_project_is_read_only(host_tree: HostTree, rootless: bool) -> None:
    def body() -> dict[str, object]:
        module = os.path.join(host_tree.project, "module.py")
        return {
            "readable": open(module).read(),
            "create": errno_name(lambda: open(os.path.join(host_tree.project, "new.py"), "w")),
            "append": errno_name(lambda: open(module, "a")),
            "remove": errno_name(lambda: os.unlink(module)),
        }

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["readable"] == "VALUE = 1\n"
    assert run.answer["create"] == "EROFS"
    assert run.answer["append"] == "EROFS"
    assert run.answer["remove"] == "EROFS"


def _double_chroot_listing() -> list[str]:
    """The classic escape: chroot into a subdirectory, then walk '..' past the root."""
    os.makedirs("/tmp/escape", exist_ok=True)
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    os.chroot("/tmp/escape")
    os.fchdir(fd)
    os.close(fd)
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    return sorted(os.listdir("/"))


def test_the_double_chroot_escape_is_denied_to_the_test(
    host_tree: HostTree, rootless: bool
) -> None:
    def body() -> dict[str, object]:
        return {"chroot": errno_name(_double_chroot_listing)}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["chroot"] == "EPERM"


def test_even_root_in_the_jail_finds_no_way_back_to_the_host_root(
    host_tree: HostTree, rootless: bool
) -> None:
    """Without the privilege drop, the chroot escape works, and still lands in the jail:
    the host root was detached, so there is nothing above the jail's /."""

    def body() -> dict[str, object]:
        jail_root = sorted(os.listdir("/"))
        return {"jail_root": jail_root, "after_escape": _double_chroot_listing()}

    run = run_jailed(body, host_tree.config(), rootless=rootless, drop=False)
    assert run.answer["after_escape"] == run.answer["jail_root"]
    assert "home" not in run.answer["jail_root"]
    assert set(run.answer["jail_root"]) & {"work", "root"} <= shown_below("/")


def test_proc_root_of_pid_1_does_not_lead_out(host_tree: HostTree, rootless: bool) -> None:
    def body() -> dict[str, object]:
        try:
            through_init = sorted(os.listdir("/proc/1/root"))
        except OSError as exc:
            through_init = [errno.errorcode[exc.errno or 0]]
        return {"through_init": through_init, "jail_root": sorted(os.listdir("/"))}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["through_init"] in (["EACCES"], run.answer["jail_root"])


def test_the_broker_is_invisible_and_cannot_be_signalled(
    host_tree: HostTree, rootless: bool
) -> None:
    broker = os.getpid()

    def body() -> dict[str, object]:
        return {
            "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "own_pid": os.getpid(),
            "proc_entry": os.path.exists(f"/proc/{broker}"),
            "proc_root": errno_name(lambda: os.listdir(f"/proc/{broker}/root")),
            "kill": errno_name(lambda: os.kill(broker, 9)),
        }

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["pids"] == [1, 2]
    assert run.answer["own_pid"] == 2
    assert run.answer["proc_entry"] is False
    assert run.answer["proc_root"] == "ENOENT"
    assert run.answer["kill"] == "ESRCH"


def test_killing_pid_1_from_inside_changes_nothing(host_tree: HostTree, rootless: bool) -> None:
    def body() -> dict[str, object]:
        result = errno_name(lambda: os.kill(1, 9))
        return {"kill_init": result, "still_here": True}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["kill_init"] in ("EPERM", "ok")  # ok: ignored by the kernel (rootless)
    assert run.answer["still_here"] is True
    assert run.exit_code == 0


def test_mknod_is_denied(host_tree: HostTree, rootless: bool) -> None:
    def body() -> dict[str, object]:
        device = stat.S_IFCHR | 0o666
        return {"mknod": errno_name(lambda: os.mknod("/tmp/mem", device, os.makedev(1, 1)))}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["mknod"] == "EPERM"


def test_host_directories_are_not_reachable(host_tree: HostTree, rootless: bool) -> None:
    def body() -> dict[str, object]:
        paths = ["/home", "/var", "/opt", "/srv", "/boot", "/mnt", "/run", "/sys", CHECKOUT]

        def listing(path: str) -> object:
            try:
                return sorted(os.listdir(path))
            except OSError as exc:
                return errno.errorcode.get(exc.errno or 0, str(exc))

        return {p: listing(p) for p in paths}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert set(run.answer) - {"pidns"}
    for path, outcome in run.answer.items():
        if path != "pidns":
            assert outcome == "ENOENT" or set(outcome) == shown_below(path) != set(), path


def test_a_host_directory_descriptor_is_closed_by_the_runner(host_tree: HostTree) -> None:
    """A leaked directory fd is a way out of any chroot; the runner's close step removes it."""
    leaked = os.open("/root", os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(leaked, True)
    try:

        def body() -> dict[str, object]:
            return {"openat": errno_name(lambda: os.listdir(leaked))}

        run = run_jailed(body, host_tree.config())
    finally:
        os.close(leaked)
    assert run.answer["openat"] == "EBADF"


def test_the_docker_socket_and_host_unix_sockets_are_invisible(
    host_tree: HostTree, rootless: bool
) -> None:
    host_socket_path = os.path.join(host_tree.root, "host.sock")
    abstract_name = f"\0isolate-jail-{uuid.uuid4().hex}"
    listeners = []
    for address in (host_socket_path, abstract_name):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(address)
        listener.listen(1)
        listeners.append(listener)

    def connect(address: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(address)

    def body() -> dict[str, object]:
        return {
            "docker": errno_name(lambda: connect("/var/run/docker.sock")),
            "path": errno_name(lambda: connect(host_socket_path)),
            "abstract": errno_name(lambda: connect(abstract_name)),
        }

    try:
        run = run_jailed(body, host_tree.config(), rootless=rootless)
    finally:
        for listener in listeners:
            listener.close()
    assert run.answer == {**run.answer, "docker": "ENOENT", "path": "ENOENT"}
    assert run.answer["abstract"] == "ECONNREFUSED"  # its own network namespace


def test_a_loopback_listener_of_the_host_is_unreachable(
    host_tree: HostTree, rootless: bool
) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def connect() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(2)
            client.connect(("127.0.0.1", port))

    def body() -> dict[str, object]:
        return {"tcp": errno_name(connect)}

    try:
        run = run_jailed(body, host_tree.config(), rootless=rootless)
    finally:
        listener.close()
    assert run.answer["tcp"] == "ECONNREFUSED"


def test_the_hostname_is_the_jails_and_the_host_keeps_its_own(
    host_tree: HostTree, rootless: bool
) -> None:
    host_name = socket.gethostname()

    def body() -> dict[str, object]:
        return {
            "seen": socket.gethostname(),
            "set": errno_name(lambda: socket.sethostname("pwned")),
        }

    run = run_jailed(body, host_tree.config(hostname="isolate"), rootless=rootless)
    assert run.answer["seen"] == "isolate"
    assert run.answer["set"] == "EPERM"
    assert socket.gethostname() == host_name


def test_mount_is_denied(host_tree: HostTree, rootless: bool) -> None:
    def body() -> dict[str, object]:
        return {
            "tmpfs": errno_name(lambda: syscalls.mount("tmpfs", "/tmp", "tmpfs", 0)),
            "proc": errno_name(lambda: syscalls.mount("proc", "/tmp", "proc", 0)),
            "remount_rw": errno_name(
                lambda: syscalls.mount(None, host_tree.project, None, syscalls.MS_REMOUNT)
            ),
            "umount": errno_name(lambda: syscalls.umount2(host_tree.project, syscalls.MNT_DETACH)),
        }

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert {k: v for k, v in run.answer.items() if k != "pidns"} == {
        "tmpfs": "EPERM",
        "proc": "EPERM",
        "remount_rw": "EPERM",
        "umount": "EPERM",
    }


def test_new_namespaces_other_than_user_are_denied(host_tree: HostTree, rootless: bool) -> None:
    """Nested user namespaces need no privilege; the runner's seccomp layer denies them."""

    def body() -> dict[str, object]:
        return {
            name: errno_name(functools.partial(syscalls.unshare, flag))
            for name, flag in (
                ("mount", syscalls.CLONE_NEWNS),
                ("net", syscalls.CLONE_NEWNET),
                ("pid", syscalls.CLONE_NEWPID),
                ("uts", syscalls.CLONE_NEWUTS),
            )
        }

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert {k: v for k, v in run.answer.items() if k != "pidns"} == {
        "mount": "EPERM",
        "net": "EPERM",
        "pid": "EPERM",
        "uts": "EPERM",
    }


def test_no_capability_is_left_after_the_runner_drops_privileges(
    host_tree: HostTree, rootless: bool
) -> None:
    def body() -> dict[str, object]:
        with open("/proc/self/status") as handle:
            fields = dict(line.split(":\t", 1) for line in handle.read().splitlines())
        return {name: fields[name].strip() for name in ("CapEff", "CapPrm", "CapBnd", "CapAmb")}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    for name in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(run.answer[name], 16) == 0, name


def test_the_init_process_can_be_neither_traced_nor_read(
    host_tree: HostTree, rootless: bool
) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ptrace_attach = 16

    def attach() -> None:
        if libc.ptrace(ptrace_attach, 1, None, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def body() -> dict[str, object]:
        return {
            "ptrace": errno_name(attach),
            "mem": errno_name(lambda: open("/proc/1/mem", "rb").read(1)),
            "environ": errno_name(lambda: open("/proc/1/environ", "rb").read()),
        }

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["ptrace"] == "EPERM"
    assert run.answer["mem"] == "EACCES"
    assert run.answer["environ"] == "EACCES"


def test_a_rootless_jail_allows_no_nested_user_namespace(host_tree: HostTree) -> None:
    """The limit lives in the jail's own user namespace; a root jail has none and relies
    on the runner's seccomp layer instead."""

    def body() -> dict[str, object]:
        with open("/proc/sys/user/max_user_namespaces") as handle:
            limit = handle.read().strip()
        return {
            "unshare": errno_name(lambda: syscalls.unshare(syscalls.CLONE_NEWUSER)),
            "limit": limit,
        }

    run = run_jailed(body, host_tree.config(), rootless=True)
    assert run.answer["unshare"] == "ENOSPC"
    assert run.answer["limit"] == "0"
    with open("/proc/sys/user/max_user_namespaces") as handle:
        assert int(handle.read()) > 0  # the host's own limit is untouched
