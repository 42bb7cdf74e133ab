"""process: a crash, a hang or a leak stays in the test's own forked process."""

import ctypes
import time

import pytest

from pytest_isolate import isolate


@isolate("process")
def test_ordinary_test_passes_as_usual(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    assert (tmp_path / "data.txt").read_text() == "hello"


@pytest.mark.xfail(reason="demo: a segfault is reported, the run goes on", strict=True)
@isolate("process")
def test_segfault_is_reported_not_fatal():
    ctypes.string_at(0)


@pytest.mark.xfail(reason="demo: a hang is killed after its timeout", strict=True)
@isolate("process", timeout=1)
def test_hang_is_killed_after_timeout():
    time.sleep(60)


@isolate("process", mem_limit="256M")
def test_memory_limit_turns_a_runaway_into_memory_error():
    with pytest.raises(MemoryError):
        bytearray(1 << 30)
