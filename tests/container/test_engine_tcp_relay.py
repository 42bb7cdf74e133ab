"""The loopback relay that gives tests a tcp:// engine."""

from __future__ import annotations

import os
import socket
import threading

from pytest_isolate.container.tcp_relay import LoopbackTcpRelay


def test_it_listens_on_loopback_only() -> None:
    with LoopbackTcpRelay() as relay:
        assert relay.url == f"tcp://127.0.0.1:{relay.port}"
        assert relay._listener.getsockname()[0] == "127.0.0.1"


def test_it_speaks_the_engine_api() -> None:
    with LoopbackTcpRelay() as relay, socket.create_connection(("127.0.0.1", relay.port)) as conn:
        conn.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"OK")


def test_a_connection_from_another_uid_is_dropped_unanswered() -> None:
    with LoopbackTcpRelay() as relay:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            with socket.create_connection(("127.0.0.1", relay.port)) as conn:
                conn.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                try:
                    answer = conn.recv(4096)
                except ConnectionResetError:
                    answer = b""
            os.write(write_end, b"answered" if answer else b"dropped")
            os._exit(0)
        os.close(write_end)
        verdict = os.read(read_end, 100)
        os.close(read_end)
        os.waitpid(pid, 0)
    assert verdict == b"dropped"


def test_closing_it_cuts_open_connections_and_stops_its_threads() -> None:
    before = threading.active_count()
    relay = LoopbackTcpRelay()
    conn = socket.create_connection(("127.0.0.1", relay.port))
    conn.sendall(b"GET /events HTTP/1.1\r\nHost: docker\r\n\r\n")  # a stream that never ends
    assert conn.recv(12).startswith(b"HTTP/1.1 200")
    relay.close()
    conn.settimeout(5)
    while conn.recv(4096):
        pass
    conn.close()
    assert threading.active_count() == before
