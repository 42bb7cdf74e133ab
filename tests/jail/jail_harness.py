"""Run a function in a real jailed child, as the chroot backend's runner would, and
bring back its JSON answer, its wait status and proof that nothing of it is left.

The child does what the runner does around ``enter_jail``: parent-death
signal, new session, close inherited descriptors, then (after the jail)
drop to nobody with no capabilities and set no_new_privs. ``rootless``
first becomes nobody, so the jail is built through a user namespace.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from pytest_isolate.jail import JailConfig, enter_jail, python_dirs
from pytest_isolate.target import steps

NOBODY = steps.unprivileged_ids()


def become_nobody() -> None:
    """In a forked child: root turns into ``nobody``, to test the rootless paths."""
    os.setgroups([])
    os.setresgid(NOBODY[1], NOBODY[1], NOBODY[1])
    os.setresuid(NOBODY[0], NOBODY[0], NOBODY[0])


# Modules the jailed function may need, loaded now: a rootless jail cannot
# reach this interpreter's files (/root/.pyenv is closed to nobody).
_PRELOAD = (errno, json, socket, subprocess, signal, select, time, traceback)


@dataclass
class JailRun:
    status: int
    answer: dict[str, Any]
    leftover_pids: list[int] = field(default_factory=list)

    @property
    def exit_code(self) -> int | None:
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None


def errno_name(action: Callable[[], object]) -> str:
    """Run ``action`` in the jail; 'ok' or the errno name it failed with."""
    try:
        action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "ok"


def run_jailed(
    body: Callable[[], dict[str, Any]],
    config: JailConfig,
    *,
    rootless: bool = False,
    drop: bool = True,
    timeout: float = 30.0,
    before_jail: Callable[[], None] | None = None,
) -> JailRun:
    """Fork, jail, run ``body`` as the test process, return what happened."""
    interpreter = () if rootless else python_dirs()
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # A, then C after enter_jail
        code = 0
        try:
            os.close(read_end)
            steps.set_parent_death_signal(parent)
            steps.new_session()
            steps.close_inherited_fds({2, write_end})
            if before_jail is not None:
                before_jail()
            if rootless:
                become_nobody()
            enter_jail(config, {2, write_end}, interpreter_dirs=interpreter)
            if drop:
                steps.drop_privileges(*NOBODY)
                steps.set_no_new_privs()
            _send(write_end, {"pidns": os.readlink("/proc/self/ns/pid")})
            _send(write_end, body())
        except BaseException:
            _send(write_end, {"error": traceback.format_exc()})
            code = 99
        finally:
            os._exit(code)
    os.close(write_end)
    lines = _read_all(read_end, pid, timeout)
    _pid, status = os.waitpid(pid, 0)
    answers = [json.loads(line) for line in lines if line]
    merged: dict[str, Any] = {}
    for item in answers:
        merged.update(item)
    assert "error" not in merged, merged["error"]
    leftovers = pids_in_namespace(merged.get("pidns"))
    assert leftovers == [], f"processes of the jail outlived it: {leftovers}"
    return JailRun(status, merged, leftovers)


def _send(fd: int, data: dict[str, Any]) -> None:
    payload = (json.dumps(data) + "\n").encode()
    while payload:
        payload = payload[os.write(fd, payload) :]


def _read_all(fd: int, pid: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"jailed child silent for {timeout} s; killed")
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode().split("\n")


def pids_in_namespace(pidns: str | None) -> list[int]:
    """Host pids of processes still living in the PID namespace ``pidns`` ("pid:[N]")."""
    if not pidns:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == pidns:
                found.append(int(entry))
        except OSError:
            continue
    return found


def mount_lines() -> list[str]:
    """Our mount table, without the Docker daemon's mounts, which come and go on their own."""
    with open("/proc/self/mountinfo") as handle:
        lines = handle.read().splitlines()
    return [line for line in lines if " /var/lib/docker" not in line and " /run/docker" not in line]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
