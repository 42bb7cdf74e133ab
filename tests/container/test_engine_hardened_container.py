"""A container made from hardened_create_kwargs really is confined."""

from __future__ import annotations

import json
from typing import Any

from container_helpers import Launch

PROBE = """
import json, os
def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return line.split()[1]
def try_write(path):
    try:
        with open(path, 'w') as f:
            f.write('x')
        return 'written'
    except OSError as exc:
        return exc.__class__.__name__ + ':' + str(exc.errno)
print(json.dumps({
    'interfaces': sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]),
    'uid': os.getuid(), 'gid': os.getgid(),
    'cap_eff': status('CapEff'), 'cap_bnd': status('CapBnd'), 'no_new_privs': status('NoNewPrivs'),
    'write_etc': try_write('/etc/planted'),
    'write_tmp': try_write('/tmp/scratch'),
    'pid': os.getpid(),
}))
"""


def _probe(launch: Launch, **options: Any) -> dict[str, Any]:
    _, stream = launch(PROBE, **options)
    result: dict[str, Any] = json.loads(stream.read_all(timeout=20))
    return result


def test_the_only_network_interface_is_loopback(launch: Launch) -> None:
    assert _probe(launch)["interfaces"] == ["lo"]


def test_the_root_file_system_cannot_be_written(launch: Launch) -> None:
    assert _probe(launch)["write_etc"] == "OSError:30"  # EROFS


def test_tmp_is_writable(launch: Launch) -> None:
    assert _probe(launch)["write_tmp"] == "written"


def test_it_runs_as_nobody(launch: Launch) -> None:
    probe = _probe(launch)
    assert (probe["uid"], probe["gid"]) == (65534, 65534)


def test_it_has_no_capabilities_and_cannot_gain_any(launch: Launch) -> None:
    probe = _probe(launch)
    assert int(probe["cap_eff"], 16) == 0
    assert int(probe["cap_bnd"], 16) == 0
    assert probe["no_new_privs"] == "1"


def test_the_agent_is_pid_one(launch: Launch) -> None:
    assert _probe(launch)["pid"] == 1


FORK_BOMB = """
import os, time
children = 0
error = 'none'
for _ in range(200):
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.__class__.__name__
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children += 1
print(children, error, flush=True)
os.kill(-1, 9)
"""


def test_the_pids_limit_bounds_a_fork_loop(launch: Launch) -> None:
    _, stream = launch(FORK_BOMB, pids_limit=20)
    children, error = stream.read_all(timeout=30).split()
    assert int(children) < 20
    assert error == b"BlockingIOError"
