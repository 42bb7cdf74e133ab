"""Ordinary work inside the jail: what a normal test needs keeps working."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from conftest import HostTree
from jail_harness import errno_name, run_jailed


def test_the_jailed_test_starts_at_the_jail_root(host_tree: HostTree) -> None:
    run = run_jailed(lambda: {"cwd": os.getcwd(), "uid": os.getuid()}, host_tree.config())
    assert run.answer["cwd"] == "/"
    assert run.answer["uid"] != 0


def test_system_programs_run(host_tree: HostTree, rootless: bool) -> None:
    def body() -> dict[str, object]:
        done = subprocess.run(["/bin/ls", "/"], capture_output=True, text=True, check=True)
        return {"ls": done.stdout.split(), "listdir": sorted(os.listdir("/"))}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert sorted(run.answer["ls"]) == run.answer["listdir"]
    assert {"usr", "tmp", "dev", "proc", "etc"} <= set(run.answer["listdir"])


def test_the_interpreter_and_its_packages_are_importable(host_tree: HostTree) -> None:
    def body() -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-c", "import pytest, ssl, json; print(pytest.__version__)"],
            capture_output=True,
            text=True,
        )
        return {"code": done.returncode, "out": done.stdout.strip(), "err": done.stderr[-2000:]}

    run = run_jailed(body, host_tree.config())
    import pytest

    assert run.answer["code"] == 0, run.answer["err"]
    assert run.answer["out"] == pytest.__version__


def test_tmp_dirs_are_private_and_writable(host_tree: HostTree, rootless: bool) -> None:
    basetemp = host_tree.config().tmp_dirs[0]

    def body() -> dict[str, object]:
        for directory in (basetemp, "/tmp", "/dev/shm"):
            with open(os.path.join(directory, "scratch.txt"), "w") as handle:
                handle.write("scratch")
        return {"listing": os.listdir(basetemp)}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["listing"] == ["scratch.txt"]
    assert not os.path.exists(basetemp)  # never created on the host
    assert not os.path.exists("/tmp/scratch.txt")


def test_a_writable_path_is_shared_with_the_host(host_tree: HostTree, rootless: bool) -> None:
    def body() -> dict[str, object]:
        with open(os.path.join(host_tree.exchange, "from-jail.txt"), "w") as handle:
            handle.write("hello host")
        return {}

    run_jailed(body, host_tree.config(), rootless=rootless)
    with open(os.path.join(host_tree.exchange, "from-jail.txt")) as handle:
        assert handle.read() == "hello host"


def test_binds_are_read_only_unless_their_jail_path_is_writable(
    host_tree: HostTree, rootless: bool
) -> None:
    data = os.path.join(host_tree.root, "data")
    os.mkdir(data)
    os.chmod(data, 0o777)

    def body() -> dict[str, object]:
        return {
            "ro": errno_name(lambda: open("/srv/ro/new.txt", "w").close()),
            "rw": errno_name(lambda: open("/srv/rw/new.txt", "w").close()),
        }

    config = host_tree.config(binds=((data, "/srv/ro"), (data, "/srv/rw")), writable=("/srv/rw",))
    run = run_jailed(body, config, rootless=rootless)
    assert run.answer["ro"] == "EROFS"
    assert run.answer["rw"] == "ok"
    assert os.listdir(data) == ["new.txt"]


def test_extra_readonly_paths_are_visible_read_only(host_tree: HostTree) -> None:
    extra = os.path.join(host_tree.root, "extra")
    os.mkdir(extra)
    os.chmod(extra, 0o777)
    with open(os.path.join(extra, "fixture.json"), "w") as handle:
        handle.write("{}")

    def body() -> dict[str, object]:
        return {
            "read": open(os.path.join(extra, "fixture.json")).read(),
            "write": errno_name(lambda: open(os.path.join(extra, "x"), "w").close()),
        }

    run = run_jailed(body, host_tree.config(extra_readonly=(extra,)))
    assert run.answer == {**run.answer, "read": "{}", "write": "EROFS"}


def test_the_minimal_dev_has_the_usual_nodes_and_no_terminal(
    host_tree: HostTree, rootless: bool
) -> None:
    def body() -> dict[str, object]:
        with open("/dev/null", "w") as sink:
            sink.write("discarded")
        with open("/dev/urandom", "rb") as source:
            random_bytes = len(source.read(16))
        return {
            "dev": sorted(os.listdir("/dev")),
            "random_bytes": random_bytes,
            "zero": open("/dev/zero", "rb").read(4).hex(),
        }

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["dev"] == sorted(
        ["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "urandom", "zero"]
    )
    assert run.answer["random_bytes"] == 16
    assert run.answer["zero"] == "00000000"


def test_loopback_works_inside_the_jail(host_tree: HostTree, rootless: bool) -> None:
    def body() -> dict[str, object]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
                client.connect(server.getsockname())
                peer, _ = server.accept()
                client.sendall(b"ping")
                got = peer.recv(4)
                peer.close()
        return {"got": got.decode()}

    run = run_jailed(body, host_tree.config(), rootless=rootless)
    assert run.answer["got"] == "ping"


def test_network_true_keeps_the_host_network_and_is_weaker(host_tree: HostTree) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def body() -> dict[str, object]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(2)
            return {"tcp": errno_name(lambda: client.connect(("127.0.0.1", port)))}

    try:
        run = run_jailed(body, host_tree.config(network=True))
    finally:
        listener.close()
    assert run.answer["tcp"] == "ok"
