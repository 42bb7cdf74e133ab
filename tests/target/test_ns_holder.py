"""The namespace holder ends even when a target forked inside was never reaped.

The holder, PID 1 of its namespace, cannot finish dying until every process
of the namespace is reaped, and a target is reaped only by the broker that
forked it. A broker interrupted before reaping one once waited for the
holder's end for ever, while the holder waited for the broker.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, time
    from pytest_isolate.target.ns_holder import NamespaceHolder

    holder = NamespaceHolder.start(("mnt",), lambda: None, lambda: None)
    left = holder.fork_inside()
    if left == 0:  # a target keeps none of the broker's descriptors
        os.closerange(3, 1024)
        time.sleep(300)
        os._exit(0)
    done = holder.fork_inside()
    if done == 0:
        os._exit(0)
    os.waitpid(done, 0)  # reaped as usual, before close
    started = time.monotonic()
    holder.close()  # `left` is alive and unreaped
    try:
        os.waitpid(left, os.WNOHANG)
        print("left not reaped")
    except ChildProcessError:
        print(f"closed in {time.monotonic() - started:.2f} s, left reaped")
    """
)


def test_close_reaps_a_target_nobody_reaped() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.endswith(", left reaped\n"), out.stdout + out.stderr
