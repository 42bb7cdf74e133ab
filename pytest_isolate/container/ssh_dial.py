"""An ``ssh://`` engine through the system's ``ssh`` program, as the docker CLI reaches one.

The docker CLI runs ``ssh HOST docker system dial-stdio`` per connection and
speaks the engine's API over that process's stdin and stdout. The docker
SDK (7.x) can do the same, but only with paramiko importable, even when told
to shell out. We do it ourselves, with no extra library: a unix socket in a
private directory of this broker's (0700), where each connection the SDK
opens becomes one ``ssh`` process whose stdin and stdout it is relayed to.
So the user's ssh configuration, agent, keys and known_hosts apply exactly
as for ``docker -H ssh://...``.

``BatchMode=yes``: a prompt (a password, an unknown host key) fails at once
with ssh's own words instead of waiting on a terminal nobody watches. The
last thing ssh wrote to stderr is kept (``last_error``) for the message that
says why an engine does not answer ("Permission denied (publickey)").

When the broker dies, the relay's end of each ``ssh`` process's stdin
closes; ssh ends its session and the remote ``dial-stdio`` ends, which ends
an attached agent's stdin: the container's lifeline holds over ssh too. The
directory carries the broker's owner tag in its name (``liveness.owner_tag``),
so a later run removes what a killed one left (``supervision.context.remove_stale_scratch``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

from pytest_isolate.liveness import owner_tag
from pytest_isolate.supervision.context import SCRATCH_PREFIX, remove_stale_scratch

#: What ``ssh`` is told besides the user's configuration.
SSH_OPTIONS = ("-o", "BatchMode=yes")


def ssh_destination(url: str) -> list[str]:
    """``[-l USER] [-p PORT] -- HOST`` for ``ssh://[USER@]HOST[:PORT]``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise ValueError(f"pytest-isolate: {url!r} is not an ssh://[user@]host[:port] URL")
    words = []
    if parts.username:
        words += ["-l", parts.username]
    if parts.port:
        words += ["-p", str(parts.port)]
    return [*words, "--", parts.hostname]


def ssh_command(url: str, control: str) -> list[str]:
    """One connection to the engine: ``docker system dial-stdio``, inside the master's."""
    return [
        "ssh",
        *SSH_OPTIONS,
        "-o",
        "ControlMaster=no",
        "-o",
        f"ControlPath={control}",
        *ssh_destination(url),
        "docker",
        "system",
        "dial-stdio",
    ]


def master_command(url: str, control: str) -> list[str]:
    """The one ssh connection (``-M -N``) every ``dial-stdio`` of this engine runs inside.

    Without it each of the SDK's connections (about six per container start)
    would pay ssh's own handshake, about 0.3 s here. Keepalives end it (and
    every session in it) about 15 s after the network to the engine is cut,
    so a lost engine is found instead of waited on.
    """
    return [
        "ssh",
        *SSH_OPTIONS,
        "-M",
        "-N",
        "-o",
        "ConnectTimeout=15",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "ControlPersist=no",
        "-o",
        f"ControlPath={control}",
        *ssh_destination(url),
    ]


class SshDial:
    """A local unix socket whose every connection is ``docker system dial-stdio`` over ssh."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        if shutil.which("ssh") is None:
            raise FileNotFoundError(
                f"pytest-isolate: {url} needs the ssh program: apt-get install openssh-client"
            )
        remove_stale_scratch()  # a killed broker's relay directories
        self._directory = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{owner_tag()}-ssh-")
        control = os.path.join(self._directory, "master")
        self.command = ssh_command(url, control)
        #: What ssh last wrote to stderr, for the message when the engine does not answer.
        self.last_error = ""
        master = _start_master(master_command(url, control), control, timeout)
        if isinstance(master, str):
            self.last_error = master
            shutil.rmtree(self._directory, ignore_errors=True)
            raise ConnectionError(master)
        self._master = master
        self.path = os.path.join(self._directory, "engine.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="pytest-isolate-ssh-dial", daemon=True).start()

    @property
    def unix_url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches the broker, which closes us
            )
        except OSError as exc:
            self.last_error = str(exc)
            conn.close()
            return
        with self._lock:
            if self._closed:
                process.kill()
                conn.close()
                return
            self._processes.add(process)
        assert process.stdin and process.stdout and process.stderr
        to_ssh = threading.Thread(target=_pump_in, args=(conn, process.stdin), daemon=True)
        to_ssh.start()
        with contextlib.suppress(OSError):
            while chunk := os.read(process.stdout.fileno(), 1 << 16):
                conn.sendall(chunk)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)
        error = process.stderr.read().decode("utf-8", "replace").strip()
        if process.wait() != 0 and error:
            self.last_error = " ".join(error.split())[-300:]
        to_ssh.join(timeout=5)
        conn.close()
        with self._lock:
            self._processes.discard(process)

    def settled_error(self, timeout: float = 5.0) -> str:
        """``last_error`` once every ssh process has ended (ssh's words come after its exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._processes:
                    break
            time.sleep(0.02)
        return self.last_error

    def close(self) -> None:
        """Stop listening and end every ssh process; remove the socket's directory."""
        with self._lock:
            self._closed = True
            processes = list(self._processes)
        with contextlib.suppress(OSError):
            self._listener.close()
        for process in [*processes, self._master]:
            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(Exception):
                process.wait(timeout=5)
        shutil.rmtree(self._directory, ignore_errors=True)


def _die_with_parent() -> None:
    """In the master, before exec: end when the broker ends, even killed (no lingering ssh).

    The signal comes when the *thread* that started the master ends, so a dial
    is made by the broker's main thread (its pool connects from there).
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _start_master(
    command: list[str], control: str, timeout: float
) -> subprocess.Popen[bytes] | str:
    """The master connection, up and accepting sessions; or what ssh said when it failed."""
    master = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # a single prctl before exec
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(control):
            return master
        if master.poll() is not None:
            break
        time.sleep(0.01)
    master.kill()
    master.wait()
    assert master.stderr is not None
    said = " ".join(master.stderr.read().decode("utf-8", "replace").split())[-300:]
    return said or f"ssh did not connect within {timeout:.0f} s"


def _pump_in(conn: socket.socket, stdin: object) -> None:
    """The SDK's bytes into ssh's stdin; its half-close closes stdin (dial-stdio then ends)."""
    fd = stdin.fileno()  # type: ignore[attr-defined]
    with contextlib.suppress(OSError):
        while chunk := conn.recv(1 << 16):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    with contextlib.suppress(OSError):
        stdin.close()  # type: ignore[attr-defined]
