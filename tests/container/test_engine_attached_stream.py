"""A real container's stdin/stdout through AttachedStream."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from container_helpers import ECHO_LOOP, TEST_RUN_ID, Launch, container_exists, wait_gone

from pytest_isolate.container.engine import Engine


def test_create_attach_start_to_first_byte_is_prompt(launch: Launch) -> None:
    started = time.perf_counter()
    _, stream = launch(ECHO_LOOP)
    assert stream.read_exactly(6, timeout=10) == b"ready\n"
    elapsed = time.perf_counter() - started
    print(f"\ncreate+attach+start to first byte: {elapsed * 1000:.0f} ms")
    assert elapsed < 5.0  # about 0.5 s idle; a loaded 2-core machine stays well under 5


def test_bytes_round_trip_unchanged(launch: Launch) -> None:
    _, stream = launch(ECHO_LOOP)
    stream.read_exactly(6, timeout=10)
    message = bytes(range(256)).replace(b"\n", b"") + b"\n"
    stream.sendall(message)
    assert stream.read_exactly(len(message), timeout=5) == message


def test_a_small_message_round_trip_is_not_held_back_by_buffering(launch: Launch) -> None:
    """Each message comes back at once: no Nagle delay (40 ms) and no polling interval.

    The median is a fraction of a millisecond on an idle machine; the bound is
    what a loaded 2-core machine still meets and a delayed stream does not.
    """
    _, stream = launch(ECHO_LOOP)
    stream.read_exactly(6, timeout=10)
    samples = []
    for _ in range(500):
        started = time.perf_counter()
        stream.sendall(b"ping 0123456789\n")
        stream.read_exactly(16, timeout=5)
        samples.append(time.perf_counter() - started)
    median = statistics.median(samples)
    print(f"\nattach round trip, median of 500: {median * 1e3:.3f} ms")
    assert median < 0.03


def test_closing_stdin_ends_the_container_and_auto_remove_takes_it(
    engine: Engine, launch: Launch
) -> None:
    container_id, stream = launch(ECHO_LOOP)
    stream.read_exactly(6, timeout=10)
    stream.sendall(b"last words\n")
    stream.close_stdin()
    assert stream.read_all(timeout=10) == b"last words\n"
    assert wait_gone(engine, container_id)


def test_dropping_the_connection_ends_the_container(engine: Engine, launch: Launch) -> None:
    """What happens when the broker is SIGKILLed: its socket closes, stdin ends."""
    container_id, stream = launch(ECHO_LOOP)
    stream.read_exactly(6, timeout=10)
    stream.close()
    assert wait_gone(engine, container_id)


def test_stderr_is_kept_apart_as_a_bounded_tail(launch: Launch) -> None:
    code = "import sys\nsys.stderr.write('e' * 100000 + 'END')\nsys.stdout.write('out')\n"
    _, stream = launch(code)
    assert stream.read_all(timeout=10) == b"out"
    assert stream.stderr_tail.endswith(b"END")
    assert len(stream.stderr_tail) == 64 * 1024


def test_the_stream_works_the_same_through_a_tcp_engine(
    remote_engine: Engine, launch: Launch
) -> None:
    container_id, stream = launch(ECHO_LOOP, via=remote_engine)
    assert stream.read_exactly(6, timeout=10) == b"ready\n"
    stream.sendall(b"over tcp\n")
    assert stream.read_exactly(9, timeout=5) == b"over tcp\n"
    stream.close_stdin()
    assert stream.read_all(timeout=10) == b""
    assert wait_gone(remote_engine, container_id)


BROKER = """
import sys, time
from pytest_isolate.container.attached_stream import AttachedStream
from pytest_isolate.container.engine import connect_engine
from pytest_isolate.container.hardening import hardened_create_kwargs
from pytest_isolate.container.reaping import run_labels
engine = connect_engine()
command = ["python3", "-c", sys.argv[2]]
kwargs = hardened_create_kwargs(sys.argv[1], command, labels=run_labels(sys.argv[3]))
container_id = engine.api.create_container(**kwargs)["Id"]
stream = AttachedStream.attach(engine.api, container_id)
engine.api.start(container_id)
stream.read_exactly(6, timeout=10)
print(container_id, flush=True)
time.sleep(600)
"""


def test_a_sigkilled_broker_takes_its_container_along(engine: Engine, image: str) -> None:
    broker = subprocess.Popen(
        [sys.executable, "-c", BROKER, image, ECHO_LOOP, TEST_RUN_ID],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert broker.stdout is not None
    container_id = broker.stdout.readline().decode().strip()
    assert container_exists(engine, container_id)
    broker.kill()
    broker.wait()
    broker.stdout.close()
    assert wait_gone(engine, container_id)
