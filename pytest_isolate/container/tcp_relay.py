"""A loopback TCP endpoint for the local Docker engine, for remote-mode tests.

With a tcp:// engine the project must be copied into containers instead of
bind-mounted. To test that path on one machine we need a tcp:// endpoint to
a real engine. The choices were: restart the shared dockerd with an extra
``-H tcp://127.0.0.1:PORT`` (kills everyone's running containers, and leaves
a root-equivalent port open for as long as the daemon lives), run a second
dockerd with its own data root (a second image store to fill), or this: a
relay from a loopback port to the daemon's unix socket that exists only
while a test session holds it. Same daemon, same images, nothing to restart.

The relay listens on 127.0.0.1 only, and accepts a connection only from a
process of its own uid (looked up in ``/proc/net/tcp``), so it gives nobody
more than they already have. Bytes pass through untouched, half-closes
included, so attach sockets behave as over a real tcp engine.

    with LoopbackTcpRelay() as relay:
        engine = connect_engine(relay.url)      # is_local is False

Command line: ``python -m pytest_isolate.container.tcp_relay --port 2375``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import threading
from typing import Any

DEFAULT_ENGINE_SOCKET = "/var/run/docker.sock"


def _hex_loopback(port: int) -> str:
    return f"0100007F:{port:04X}"


def peer_uid(conn: socket.socket) -> int | None:
    """The uid owning the other end of a loopback TCP connection, from /proc/net/tcp."""
    peer_port = conn.getpeername()[1]
    local_port = conn.getsockname()[1]
    want_local, want_remote = _hex_loopback(peer_port), _hex_loopback(local_port)
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1] == want_local and fields[2] == want_remote:
                return int(fields[7])
    return None


class LoopbackTcpRelay:
    """Relay 127.0.0.1:``port`` (0 picks one) to the engine's unix socket."""

    def __init__(self, unix_path: str = DEFAULT_ENGINE_SOCKET, port: int = 0) -> None:
        self.unix_path = unix_path
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept_loop, name="tcp-relay", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            if peer_uid(client) != os.getuid():
                client.close()
                continue
            try:
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(self.unix_path)
            except OSError:
                upstream.close()
                client.close()
                continue
            self._relay(client, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            if self._closed:
                client.close()
                upstream.close()
                return
            self._open.update((client, upstream))
            done = threading.Barrier(2, action=lambda: self._forget(client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                pump = threading.Thread(target=_pump, args=(source, sink, done), daemon=True)
                self._threads.append(pump)
                pump.start()

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._open.discard(sock)
                sock.close()

    def close(self) -> None:
        """Stop listening, cut every relayed connection, wait for the pumps."""
        with self._lock:
            self._closed = True
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(5)
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> LoopbackTcpRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pump(source: socket.socket, sink: socket.socket, done: threading.Barrier) -> None:
    """Copy one direction; pass an end of stream on as a half-close."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
    with contextlib.suppress(threading.BrokenBarrierError):
        done.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_isolate.container.tcp_relay")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free one)")
    parser.add_argument("--socket", default=DEFAULT_ENGINE_SOCKET, help="engine unix socket")
    args = parser.parse_args(argv)
    relay = LoopbackTcpRelay(args.socket, args.port)
    print(f"DOCKER_HOST={relay.url}", flush=True)
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stop.wait()
    relay.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
