"""Escape attempts that ``pytest --isolate-selftest`` makes from inside each backend's target.

Each probe tries one thing a hostile test would try and either returns why
it was held (the errno, what was missing) or raises :class:`Escaped` with
what got through. A probe never changes the host when it gets through: it
writes back the value it read (``/proc/sys``, the host name), unmounts what
it mounted at once, detaches from what it attached to, removes the file it
made, and tests reachability without sending a packet where the machine's
rules forbid it (a UDP ``connect`` only looks up a route).

Runs in targets: Python 3.9 syntax, the standard library and ctypes only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import platform
import socket
import tempfile
from typing import Any, Callable, Dict, Mapping

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

#: System call numbers the probes make directly, per machine.
_SYSCALLS: Dict[str, Dict[str, int]] = {
    "x86_64": {
        "keyctl": 250,
        "bpf": 321,
        "perf_event_open": 298,
        "userfaultfd": 323,
        "io_uring_setup": 425,
        "ioctl": 16,
        "ptrace": 101,
    },
    "aarch64": {
        "keyctl": 219,
        "bpf": 280,
        "perf_event_open": 241,
        "userfaultfd": 282,
        "io_uring_setup": 425,
        "ioctl": 29,
        "ptrace": 117,
    },
}

TIOCSTI = 0x5412
PTRACE_SEIZE = 0x4206
PTRACE_DETACH = 17
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MNT_DETACH = 2


class Escaped(Exception):
    """The probe got through: what it reached."""


def _syscall(name: str, *args: int) -> int:
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        raise OSError(errno.ENOSYS, f"no system call table for {platform.machine()}")
    result = int(_libc.syscall(ctypes.c_long(numbers[name]), *[ctypes.c_long(a) for a in args]))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _held(exc: OSError) -> str:
    return f"{errno.errorcode.get(exc.errno or 0, exc.errno)}: {exc.strerror}"


def _attempt(what: str, call: Callable[[], Any], undo: Callable[[Any], Any] | None = None) -> str:
    """Run ``call``; held (its errno) if it raises OSError, escaped if it returns."""
    try:
        result = call()
    except OSError as exc:
        return _held(exc)
    if undo is not None:
        with contextlib.suppress(Exception):
            undo(result)
    raise Escaped(what)


def _close(fd: int) -> None:
    os.close(fd)


# -- the probes --------------------------------------------------------------
def read_host_secret(context: Mapping[str, Any]) -> str:
    path = context["secret_file"]
    try:
        with open(path) as file:
            text = file.read()
    except OSError as exc:
        return _held(exc)
    if context["secret"] in text:
        raise Escaped(f"read {path}")
    return "the file holds something else"


def read_broker_environment(context: Mapping[str, Any]) -> str:
    secret = context["secret"]
    if any(secret in value for value in os.environ.values()):
        raise Escaped("the broker's secret variable is in the target's environment")
    try:
        with open(f"/proc/{context['broker_pid']}/environ", "rb") as file:
            data = file.read()
    except OSError as exc:
        return "not inherited; /proc/PID/environ: " + _held(exc)
    if secret.encode() in data:
        raise Escaped(f"read /proc/{context['broker_pid']}/environ")
    return "not inherited; the broker's /proc entry is another process here"


def open_docker_socket(context: Mapping[str, Any]) -> str:
    path = context.get("docker_socket") or "/var/run/docker.sock"
    if not os.path.exists(path):
        return f"{path} does not exist here"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        return _attempt(f"connected to {path}", lambda: sock.connect(path))


def write_proc_sys(context: Mapping[str, Any]) -> str:
    path = "/proc/sys/kernel/domainname"

    def write_back() -> None:
        with open(path) as file:
            value = file.read()
        with open(path, "w") as file:
            file.write(value)

    return _attempt(f"wrote {path} (its own value back)", write_back)


def ptrace_broker(context: Mapping[str, Any]) -> str:
    pid = int(context["broker_pid"])
    return _attempt(
        f"attached to the broker (pid {pid}) with ptrace",
        lambda: _syscall("ptrace", PTRACE_SEIZE, pid, 0, 0),
        lambda _: _syscall("ptrace", PTRACE_DETACH, pid, 0, 0),
    )


def mount_filesystem(context: Mapping[str, Any]) -> str:
    where = tempfile.mkdtemp(prefix="selftest-mount-")
    try:

        def mount() -> None:
            if _libc.mount(b"none", where.encode(), b"tmpfs", 0, None) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code))

        return _attempt(
            "mounted a tmpfs", mount, lambda _: _libc.umount2(where.encode(), MNT_DETACH)
        )
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(where)


def unshare_namespaces(context: Mapping[str, Any]) -> str:
    def unshare() -> None:
        if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return _attempt("made a new user and mount namespace", unshare)


def keyctl(context: Mapping[str, Any]) -> str:
    # KEYCTL_GET_KEYRING_ID (0) of the session keyring (-3), without creating it
    return _attempt("reached the kernel keyring", lambda: _syscall("keyctl", 0, -3, 0))


def bpf(context: Mapping[str, Any]) -> str:
    # BPF_MAP_CREATE (0) of a one-entry array map: the smallest thing bpf makes
    attr = (ctypes.c_uint32 * 16)(2, 4, 4, 1)  # type, key size, value size, entries
    return _attempt(
        "created a BPF map",
        lambda: _syscall("bpf", 0, ctypes.addressof(attr), ctypes.sizeof(attr)),
        _close,
    )


def perf_event_open(context: Mapping[str, Any]) -> str:
    attr = (ctypes.c_uint8 * 128)()
    ctypes.c_uint32.from_buffer(attr, 0).value = 1  # PERF_TYPE_SOFTWARE
    ctypes.c_uint32.from_buffer(attr, 4).value = 128  # its size
    ctypes.c_uint64.from_buffer(attr, 8).value = 0  # PERF_COUNT_SW_CPU_CLOCK
    ctypes.c_uint64.from_buffer(attr, 40).value = 1 | (1 << 5) | (1 << 6)  # off, no kernel/hv
    return _attempt(
        "opened a perf event",
        lambda: _syscall("perf_event_open", ctypes.addressof(attr), 0, -1, -1, 0),
        _close,
    )


def userfaultfd(context: Mapping[str, Any]) -> str:
    return _attempt("opened a userfaultfd", lambda: _syscall("userfaultfd", 0), _close)


def io_uring_setup(context: Mapping[str, Any]) -> str:
    params = (ctypes.c_uint8 * 120)()
    return _attempt(
        "set up an io_uring (its operations would bypass a seccomp filter)",
        lambda: _syscall("io_uring_setup", 1, ctypes.addressof(params)),
        _close,
    )


def tiocsti(context: Mapping[str, Any]) -> str:
    """Push a character into a terminal's input, plain and with the 64-bit-argument form."""
    char = ctypes.c_char(b" ")
    reasons = []
    for fd in (0, 1, 2):
        for request in (TIOCSTI, TIOCSTI | (1 << 32)):
            try:
                _syscall("ioctl", fd, request, ctypes.addressof(char))
            except OSError as exc:
                reasons.append(_held(exc))
                continue
            raise Escaped(f"pushed input into descriptor {fd}'s terminal")
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError as exc:
        return f"no terminal: /dev/tty {_held(exc)}; descriptors 0-2: {sorted(set(reasons))}"
    try:
        return _attempt(
            "pushed input into /dev/tty",
            lambda: _syscall("ioctl", tty, TIOCSTI, ctypes.addressof(char)),
        )
    finally:
        os.close(tty)


def _tcp(address: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        return "no socket: " + _held(exc)
    with sock:
        sock.settimeout(2.0)
        try:
            sock.connect((address, port))
        except socket.timeout:
            return "timed out"
        except OSError as exc:
            return _held(exc)
    raise Escaped(f"connected to {address} port {port}")


def connect_loopback(context: Mapping[str, Any]) -> str:
    return _tcp("127.0.0.1", int(context["port"]))


def connect_host_addresses(context: Mapping[str, Any]) -> str:
    reasons = [_tcp(address, int(context["port"])) for address in context["host_addresses"]]
    return "; ".join(sorted(set(reasons))) or "the host has no address but loopback"


def reach_metadata_service(context: Mapping[str, Any]) -> str:
    """A route to 169.254.169.254: a UDP ``connect`` looks the route up and sends nothing."""
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError as exc:
        return "no socket: " + _held(exc)
    with sock:
        return _attempt(
            "has a route to 169.254.169.254", lambda: sock.connect(("169.254.169.254", 80))
        )


def raise_capability(context: Mapping[str, Any]) -> str:
    with open("/proc/self/status") as file:
        fields = dict(line.split(":", 1) for line in file if ":" in line)
    # Not every kernel shows the ambient set (gVisor); it is a subset of the permitted.
    fields.setdefault("CapAmb", fields["CapPrm"])
    held = {name: int(fields[name].strip(), 16) for name in ("CapEff", "CapPrm", "CapAmb")}
    if any(held.values()):
        shown = ", ".join(f"{name} {value:#x}" for name, value in held.items() if value)
        raise Escaped(f"holds capabilities ({shown})")
    return "no capability held, none to raise"


def set_host_name(context: Mapping[str, Any]) -> str:
    name = socket.gethostname()
    return _attempt(
        f"set the host name (to its own value {name!r})", lambda: socket.sethostname(name)
    )


def write_project(context: Mapping[str, Any]) -> str:
    path = os.path.join(context["project"], f".selftest-{os.getpid()}")
    return _attempt(
        f"created {path}",
        lambda: os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)),
        lambda _: os.unlink(path),
    )


#: Probe name -> the function; ``selftest.CLAIMS`` says what each backend claims for each.
PROBES: Dict[str, Callable[[Mapping[str, Any]], str]] = {
    "read a host secret file": read_host_secret,
    "read the broker's environment": read_broker_environment,
    "open the Docker socket": open_docker_socket,
    "write /proc/sys": write_proc_sys,
    "ptrace the broker": ptrace_broker,
    "mount a file system": mount_filesystem,
    "unshare namespaces": unshare_namespaces,
    "keyctl": keyctl,
    "bpf": bpf,
    "perf_event_open": perf_event_open,
    "userfaultfd": userfaultfd,
    "io_uring_setup": io_uring_setup,
    "TIOCSTI (both argument widths)": tiocsti,
    "connect to loopback": connect_loopback,
    "connect to the host's addresses": connect_host_addresses,
    "reach 169.254.169.254": reach_metadata_service,
    "hold or raise a capability": raise_capability,
    "set the host name": set_host_name,
    "write the project directory": write_project,
}
