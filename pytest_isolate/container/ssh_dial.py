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
directory carries the broker's pid in its name, so a later run removes what
a killed one left (``supervision.context.remove_stale_scratch``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

from pytest_isolate.supervision.context import SCRATCH_PREFIX

#: What ``ssh`` is told besides the user's configuration.
SSH_OPTIONS = ("-o", "BatchMode=yes")


def ssh_command(url: str) -> list[str]:
    """``ssh [-l USER] [-p PORT] -- HOST docker system dial-stdio`` for ``ssh://[USER@]HOST[:PORT]``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise ValueError(f"pytest-isolate: {url!r} is not an ssh://[user@]host[:port] URL")
    command = ["ssh", *SSH_OPTIONS]
    if parts.username:
        command += ["-l", parts.username]
    if parts.port:
        command += ["-p", str(parts.port)]
    return [*command, "--", parts.hostname, "docker", "system", "dial-stdio"]


class SshDial:
    """A local unix socket whose every connection is ``docker system dial-stdio`` over ssh."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.command = ssh_command(url)
        if shutil.which("ssh") is None:
            raise FileNotFoundError(
                f"pytest-isolate: {url} needs the ssh program: apt-get install openssh-client"
            )
        self._directory = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-ssh-")
        self.path = os.path.join(self._directory, "engine.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._closed = False
        #: What ssh last wrote to stderr, for the message when the engine does not answer.
        self.last_error = ""
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
        for process in processes:
            with contextlib.suppress(OSError):
                process.kill()
        for process in processes:
            with contextlib.suppress(Exception):
                process.wait(timeout=5)
        shutil.rmtree(self._directory, ignore_errors=True)


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
