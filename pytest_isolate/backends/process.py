"""``isolate("process")``: a fresh forked process per test.

Stops a test from crashing, hanging or leaking into the run (and from
outliving its test); it does not stop the test from reading files, the
network or the broker's environment. Use ``seccomp`` or ``chroot`` for that.
"""

from __future__ import annotations

from pytest_isolate.backends.forked import ForkedBackend


class ProcessBackend(ForkedBackend):
    name = "process"
    summary = "a fresh forked process per test: crashes, hangs and leaks stay in it"
