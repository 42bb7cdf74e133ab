"""What a command inside the guest sees of the host: only what it was given.

All tests share one booted guest (see ``booted`` in conftest.py).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from vm_helpers import REPO, GuestSession


def test_channel_round_trips_bytes_unchanged(guest_session: GuestSession) -> None:
    payload = "".join(chr(c) for c in range(32, 127)) + "ünïcødé"
    assert guest_session.request(op="echo", data=payload) == payload


def test_channel_round_trip_time(guest_session: GuestSession) -> None:
    times = []
    for index in range(200):
        started = time.perf_counter()
        assert guest_session.request(op="echo", data=index) == index
        times.append(time.perf_counter() - started)
    median_ms = statistics.median(times) * 1000
    print(f"\nchannel round trip (JSON line, guest Python under TCG): median {median_ms:.2f} ms")
    assert median_ms < 50


def test_boot_to_first_byte_of_a_python_command(booted: tuple[GuestSession, float]) -> None:
    print(f"\nboot to first byte of `python -c ...` in the guest: {booted[1]:.2f} s")
    assert booted[1] < 30


def test_import_pytest_in_the_guest(guest_session: GuestSession) -> None:
    seconds = guest_session.run(
        "import time\nt = time.monotonic()\nimport pytest\nresult = time.monotonic() - t"
    )
    print(f"\n`import pytest` in the guest: {seconds:.2f} s")
    assert isinstance(seconds, float)


def test_command_runs_as_pid_1(guest_session: GuestSession) -> None:
    assert guest_session.run("import os\nresult = os.getpid()") == 1


def test_command_sees_only_the_configured_environment(guest_session: GuestSession) -> None:
    environ = guest_session.run("import os\nresult = dict(os.environ)")
    assert environ == {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "PI_MARK": "guest-env"}


def test_command_starts_in_the_configured_cwd(guest_session: GuestSession) -> None:
    assert guest_session.run("import os\nresult = os.getcwd()") == REPO


def test_command_runs_the_host_interpreter(guest_session: GuestSession) -> None:
    answer = guest_session.run("import sys\nresult = [sys.executable, sys.version]")
    assert answer == [sys.executable, sys.version]


def test_project_dir_is_visible_at_the_same_path(guest_session: GuestSession) -> None:
    code = f"result = open({REPO + '/pyproject.toml'!r}).read()"
    assert guest_session.run(code) == Path(REPO, "pyproject.toml").read_text()


def test_project_dir_is_read_only(guest_session: GuestSession) -> None:
    name = f"{REPO}/vm-write-probe-{uuid.uuid4().hex}"
    answer = guest_session.run(f"open({name!r}, 'w').write('x')")
    assert answer["error"] == "OSError"
    assert "Read-only file system" in answer["message"]
    assert not os.path.exists(name)


def test_a_share_under_tmp_is_visible_on_the_guests_tmpfs(
    guest_session: GuestSession, tmp_share: Path
) -> None:
    code = f"result = open({str(tmp_share / 'shared.txt')!r}).read()"
    assert guest_session.run(code) == "from the host's /tmp\n"


def test_a_share_under_tmp_is_read_only(guest_session: GuestSession, tmp_share: Path) -> None:
    name = str(tmp_share / f"vm-write-probe-{uuid.uuid4().hex}")
    answer = guest_session.run(f"open({name!r}, 'w').write('x')")
    assert answer["error"] == "OSError"
    assert "Read-only file system" in answer["message"]
    assert not os.path.exists(name)


def test_system_dirs_are_read_only(guest_session: GuestSession) -> None:
    answer = guest_session.run("open('/usr/bin/pytest-isolate-probe', 'w')")
    assert answer["error"] == "OSError"
    assert "Read-only file system" in answer["message"]


def test_writes_to_tmp_and_the_root_stay_in_the_guest(guest_session: GuestSession) -> None:
    names = [f"/tmp/vm-probe-{uuid.uuid4().hex}", f"/vm-probe-{uuid.uuid4().hex}"]
    names.append(f"/etc/vm-probe-{uuid.uuid4().hex}")
    code = "\n".join(f"open({name!r}, 'w').write('guest')" for name in names)
    code += f"\nimport os\nresult = [os.path.exists(n) for n in {names!r}]"
    assert guest_session.run(code) == [True, True, True]
    assert [os.path.exists(name) for name in names] == [False, False, False]


def test_host_secret_under_root_is_invisible(
    guest_session: GuestSession, host_secret: Path
) -> None:
    code = f"import os\nresult = [os.path.exists({str(host_secret)!r}), os.listdir('/root')]"
    exists, listing = guest_session.run(code)
    assert exists is False
    assert listing == [".pyenv"] or listing == []


def test_only_the_python_prefix_of_the_home_dir_is_shared(guest_session: GuestSession) -> None:
    # the interpreter's own prefix (pyenv's, under /root): a venv's base
    prefix = os.path.realpath(sys.base_prefix)
    parent = os.path.dirname(prefix)
    answer = guest_session.run(f"import os\nresult = os.listdir({parent!r})")
    assert answer == [os.path.basename(prefix)]


def test_no_network_interface_but_loopback(guest_session: GuestSession) -> None:
    assert guest_session.run("import os\nresult = os.listdir('/sys/class/net')") == ["lo"]


def test_guest_runs_its_own_kernel(guest_session: GuestSession) -> None:
    guest_release = guest_session.run("import os\nresult = os.uname().release")
    assert guest_release != os.uname().release or guest_release.startswith("6.1")


KERNEL_TRICKS = """
import ctypes, os, socket, time
libc = ctypes.CDLL(None, use_errno=True)
done = {}
done["sethostname"] = libc.sethostname(b"owned-by-the-guest", 18) == 0
class timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]
done["settimeofday"] = libc.settimeofday(ctypes.byref(timeval(1_000_000_000, 0)), None) == 0
with open("/proc/sys/kernel/domainname", "w") as handle:
    handle.write("owned-by-the-guest")
done["sysctl"] = True
done["mount_tmpfs_over_etc"] = libc.mount(b"none", b"/etc", b"tmpfs", 0, None) == 0
with open("/proc/sysrq-trigger", "w") as handle:
    handle.write("s")  # sync: harmless, but only root of a kernel may ask
done["sysrq"] = True
done["guest_year"] = time.gmtime().tm_year
done["guest_hostname"] = socket.gethostname()
result = done
"""


def test_kernel_level_tricks_as_root_stay_inside_the_guest(guest_session: GuestSession) -> None:
    """Root in the guest changes its own kernel's state, never the host's."""
    import socket

    host_name = socket.gethostname()
    host_domain = Path("/proc/sys/kernel/domainname").read_text()
    done = guest_session.run(KERNEL_TRICKS)
    assert done["sethostname"] and done["settimeofday"] and done["sysctl"] and done["sysrq"]
    assert done["mount_tmpfs_over_etc"]
    assert done["guest_hostname"] == "owned-by-the-guest"
    assert done["guest_year"] == 2001  # the guest's clock moved back...
    assert time.gmtime().tm_year > 2001  # ...the host's did not
    assert socket.gethostname() == host_name
    assert Path("/proc/sys/kernel/domainname").read_text() == host_domain
    assert Path("/etc/hostname").exists()  # the guest's tmpfs over /etc is its own
