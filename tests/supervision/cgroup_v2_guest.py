"""Runs as PID 1 of a QEMU guest for ``test_cgroup_v2_guest.py``: cgroup v2 for real.

Usage: ``python cgroup_v2_guest.py PROJECT_DIR``. Mounts the unified
hierarchy where distributions do (the guest's own kernel offers every
controller there), then, in a child so that PID 1 stays free to reap
orphans as an init does:

1. drives ``empty_group``'s freeze fallback (Linux < 5.14) on a fork bomb and a daemon;
2. leaves the leaf of a "broker" SIGKILLed with a member still inside;
3. runs ``pytest --isolate=process`` on the project (whose start reaps that leaf);
4. looks at what is left,

and writes its findings as one JSON line to stdout (the channel), after a
first line that says the guest is up.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pytest_isolate.supervision.cgroup_v2 import CgroupV2Tree, empty_group
from pytest_isolate.target import syscalls

MOUNT = Path("/sys/fs/cgroup")
PID_DIR = "/tmp/pids"

CRASHING_BROKER = """
import os, signal, time
from pytest_isolate.supervision.cgroup_v2 import CgroupV2Tree
tree = CgroupV2Tree.create()
read_end, write_end = os.pipe()
if os.fork() == 0:
    tree.adopt(os.getpid())
    os.write(write_end, b"x")
    while True:
        time.sleep(1)
os.read(read_end, 1)
print(os.getpid(), tree.leaf, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie is dead, waiting for its reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _bomb_and_daemon(tree: CgroupV2Tree, write_end: int) -> None:
    """In a forked child: join the leaf, leave a setsid daemon, fork until the limit says no."""
    tree.adopt(os.getpid())
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_end, f"daemon {os.getpid()}\n".encode())
            while True:
                time.sleep(1)
        os._exit(0)
    while True:  # every member keeps forking, as the kill comes
        try:
            if os.fork() == 0:
                os.write(write_end, f"bomb {os.getpid()}\n".encode())
        except OSError:
            time.sleep(0.01)


def freeze_fallback() -> dict[str, Any]:
    tree = CgroupV2Tree.create()
    if tree is None:
        return {"error": "CgroupV2Tree.create() declined"}
    tree.before_start(pids_limit=24)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        _bomb_and_daemon(tree, write_end)
    os.close(write_end)
    seen: dict[str, list[int]] = {"bomb": [], "daemon": []}
    buffered = b""
    deadline = time.monotonic() + 30
    while (len(seen["bomb"]) < 16 or not seen["daemon"]) and time.monotonic() < deadline:
        if not select.select([read_end], [], [], 1.0)[0]:
            continue
        buffered += os.read(read_end, 4096)
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            kind, pid = line.decode().split()
            seen[kind].append(int(pid))
    started = time.monotonic()
    emptied = empty_group(tree.leaf, "freeze")
    seconds = time.monotonic() - started
    os.waitpid(child, 0)
    result = {
        "emptied": emptied,
        "seconds": seconds,
        "bombs": len(seen["bomb"]),
        "daemons": len(seen["daemon"]),
        "alive": [pid for pid in seen["bomb"] + seen["daemon"] if alive(pid)],
        "procs_after": (tree.leaf / "cgroup.procs").read_text().split(),
        "freeze_after": (tree.leaf / "cgroup.freeze").read_text().strip(),
    }
    os.close(read_end)
    tree.close()
    return result


def crash_a_broker() -> dict[str, Any]:
    """A broker SIGKILLed with a member in its leaf: what the next run must clean up."""
    # The member keeps the pipe open: read one line rather than to the end.
    broker = subprocess.Popen([sys.executable, "-c", CRASHING_BROKER], stdout=subprocess.PIPE)
    assert broker.stdout is not None
    broker_pid, leaf = broker.stdout.readline().decode().split()
    broker.stdout.close()
    broker.wait()
    members = [int(pid) for pid in Path(leaf, "cgroup.procs").read_text().split()]
    return {"broker": int(broker_pid), "leaf": leaf, "members": members}


def run_pytest(project: str) -> dict[str, Any]:
    os.makedirs(PID_DIR, exist_ok=True)
    command = [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "--isolate=process"]
    started = time.monotonic()
    out = subprocess.run(
        command,
        cwd=project,
        env={**os.environ, "PID_DIR": PID_DIR},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
        check=False,
    )
    return {"ret": out.returncode, "output": out.stdout, "seconds": time.monotonic() - started}


def recorded_pids() -> dict[str, list[int]]:
    found = {}
    for name in ("bomb", "daemon"):
        with open(os.path.join(PID_DIR, name)) as handle:
            found[name] = [int(line) for line in handle.read().split()]
    return found


def leftovers() -> list[str]:
    """Every cgroup under the mount: the guest has none but ours."""
    return sorted(str(path.relative_to(MOUNT)) for path in MOUNT.rglob("*") if path.is_dir())


def progress(step: str) -> None:
    """On the console (stderr), which the host shows when something goes wrong."""
    print(f"cgroup_v2_guest: {step}", file=sys.stderr, flush=True)


def investigate(project: str) -> dict[str, Any]:
    progress("freeze fallback")
    findings: dict[str, Any] = {"freeze": freeze_fallback()}
    findings["groups_after_freeze_check"] = leftovers()
    progress("crashing a broker")
    stale = crash_a_broker()
    stale["leaf_before"] = os.path.isdir(stale["leaf"])
    stale["alive_before"] = [pid for pid in stale["members"] if alive(pid)]
    progress("pytest --isolate=process")
    findings["run"] = run_pytest(project)
    progress("looking at what is left")
    stale["leaf_after"] = os.path.isdir(stale["leaf"])
    stale["alive_after"] = [pid for pid in stale["members"] if alive(pid)]
    findings["stale"] = stale
    pids = recorded_pids()
    findings["recorded"] = pids
    findings["alive_after_run"] = [pid for pid in pids["bomb"] + pids["daemon"] if alive(pid)]
    findings["groups_after_run"] = leftovers()
    findings["daemon_at_report"] = Path(PID_DIR, "daemon-at-report").read_text()
    return findings


def main() -> None:
    syscalls.mount("cgroup2", str(MOUNT), "cgroup2", 0)
    sys.stdout.write("cgroup2 mounted\n")  # the host's wait_ready waits for a first byte
    sys.stdout.flush()
    worker = os.fork()
    if worker == 0:
        try:
            findings = investigate(sys.argv[1])
        except BaseException:
            findings = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(findings) + "\n")
        sys.stdout.flush()
        os._exit(0)
    while os.wait()[0] != worker:  # PID 1 reaps every orphan, as an init does
        pass


if __name__ == "__main__":
    main()
