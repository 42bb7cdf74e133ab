"""Compile a ``PolicySpec`` to BPF once in the broker; load it in each test's child.

Building a filter with libseccomp costs about a millisecond, loading a
finished program about a quarter of that, so the broker compiles once per
distinct spec (``compile_policy`` is cached) and every child only calls
``CompiledPolicy.install()``.

``install()`` runs after the privilege drop and must not import or allocate
anything surprising: the ctypes buffers and the syscall number are prepared
here, in the broker, and survive ``fork()`` at the same addresses.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from typing import Any

from pytest_isolate.policy.filter_plan import (
    ALLOW,
    ENOSYS,
    KILL,
    NOTIFY,
    FilterPlan,
    baseline_plan,
    policy_plan,
)
from pytest_isolate.policy.policy_spec import PolicySpec

SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
_ENOSYS = 38

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _SockFilterProgram(ctypes.Structure):
    """``struct sock_fprog`` from linux/filter.h."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _LoadableProgram:
    """A BPF program held in C memory, ready for seccomp(SET_MODE_FILTER)."""

    def __init__(self, bpf: bytes) -> None:
        if not bpf or len(bpf) % 8:
            raise ValueError(f"a BPF program is a non-empty multiple of 8 bytes, got {len(bpf)}")
        self.bpf = bpf
        self._buffer = ctypes.create_string_buffer(bpf, len(bpf))
        self._program = _SockFilterProgram(len(bpf) // 8, ctypes.addressof(self._buffer))
        self.pointer = ctypes.addressof(self._program)


def _load(seccomp_nr: int, program: _LoadableProgram, flags: int) -> int:
    result = int(
        _libc.syscall(
            ctypes.c_long(seccomp_nr),
            ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
            ctypes.c_ulong(flags),
            ctypes.c_void_p(program.pointer),
        )
    )
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SET_MODE_FILTER): {os.strerror(err)}")
    return result


class LoadablePolicy:
    """Finished BPF programs and the number of ``seccomp(2)``: all a child needs to load them.

    Built from a ``CompiledPolicy`` in the broker, or from the bytes a broker
    sent into a container or VM (whose agent needs no libseccomp). Build it
    before forking: ``install()`` then only issues syscalls.
    """

    def __init__(self, baseline: bytes, notify: bytes | None, seccomp_nr: int) -> None:
        self._baseline = _LoadableProgram(baseline)
        self._notify = None if notify is None else _LoadableProgram(notify)
        self.seccomp_nr = seccomp_nr

    @property
    def bpf(self) -> bytes:
        return self._baseline.bpf

    @property
    def notify_bpf(self) -> bytes | None:
        return None if self._notify is None else self._notify.bpf

    @property
    def programs(self) -> tuple[bytes, ...]:
        """Every program in load order."""
        first = () if self._notify is None else (self._notify.bpf,)
        return (*first, self._baseline.bpf)

    @property
    def uses_notification(self) -> bool:
        return self._notify is not None

    def install(self) -> int | None:
        """Load the filters into the calling process; return the listener fd or None.

        Call after ``no_new_privs`` (or with CAP_SYS_ADMIN), from the only
        thread of a freshly forked child: filters apply to the calling thread
        and everything it starts afterwards. The notifying filter goes first
        (it creates the listener and lets ``seccomp()`` through), the baseline
        last (it kills any later ``seccomp()``).
        """
        listener: int | None = None
        if self._notify is not None:
            try:
                listener = _load(self.seccomp_nr, self._notify, SECCOMP_FILTER_FLAG_NEW_LISTENER)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                raise OSError(
                    exc.errno,
                    "seccomp(SET_MODE_FILTER): this kernel refuses a filter with a "
                    "user-notification listener (gVisor's runsc has none); the policy's "
                    "denials need one: choose policy='permissive' or the engine's runc",
                ) from None
        try:
            _load(self.seccomp_nr, self._baseline, 0)
        except BaseException:
            if listener is not None:
                os.close(listener)
            raise
        return listener


class CompiledPolicy(LoadablePolicy):
    """The BPF programs of one ``PolicySpec``; ``install()`` loads them in a child.

    ``bpf`` is the baseline program (hard kills, always loaded); ``notify_bpf``
    is the program whose denials go to the broker through user notification,
    or None when the spec denies nothing beyond the baseline.

    The child that calls ``install()`` must hand the returned listener fd to
    the broker (``socket.send_fds`` over its channel, or ``pidfd_getfd`` from
    the broker) and then **close its own copy** before untrusted code runs: a
    target holding the listener could answer its own notifications. The
    baseline also kills any ``ioctl`` with a listener request code, so a copy
    left open by mistake cannot be used; closing it is still the runner's job.
    """

    def __init__(self, spec: PolicySpec, baseline: bytes, notify: bytes | None, seccomp_nr: int):
        super().__init__(baseline, notify, seccomp_nr)
        self.spec = spec

    def __repr__(self) -> str:
        sizes = "+".join(str(len(program) // 8) for program in self.programs)
        return f"CompiledPolicy({self.spec!r}, instructions={sizes})"


def _action(name: str) -> int:
    import pyseccomp

    actions = {
        KILL: pyseccomp.KILL_PROCESS,
        ENOSYS: pyseccomp.ERRNO(_ENOSYS),
        NOTIFY: pyseccomp.NOTIFY,
        ALLOW: pyseccomp.ALLOW,
    }
    return int(actions[name])


def _arch_token(arch: str | None) -> Any:
    """libseccomp's token for ``arch`` (Debian's name); the machine's own for None."""
    import pyseccomp

    from pytest_isolate.arches import arch_named

    if arch is None:
        return pyseccomp.Arch.NATIVE
    return getattr(pyseccomp.Arch, arch_named(arch).seccomp_arch)


def _export(plan: FilterPlan, arch: str | None = None) -> bytes:
    """libseccomp -> BPF bytes. Wrong architecture (incl. x32 on x86_64) kills the process.

    For another architecture the filter holds that one alone: libseccomp
    translates each rule's call to its number there (a call it lacks is
    left out), and checks its audit architecture.
    """
    import pyseccomp

    syscall_filter = pyseccomp.SyscallFilter(_action(plan.default_action))
    syscall_filter.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    if arch is not None:
        syscall_filter.add_arch(_arch_token(arch))
        syscall_filter.remove_arch(pyseccomp.Arch.NATIVE)
    for rule in plan.rules:
        number = int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, rule.syscall))
        if number < 0:
            continue  # not a syscall of this architecture (e.g. "umount" on x86_64)
        comparisons = []
        if rule.test is not None:
            test = rule.test
            comparisons.append(
                pyseccomp.Arg(test.index, pyseccomp.MASKED_EQ, test.mask, test.value)
            )
        syscall_filter.add_rule(_action(rule.action), number, *comparisons)
    memory = os.memfd_create("pytest-isolate-bpf", os.MFD_CLOEXEC)
    try:
        with os.fdopen(memory, "w+b", closefd=False) as stream:
            syscall_filter.export_bpf(stream)
        return os.pread(memory, 1 << 20, 0)
    finally:
        os.close(memory)


@functools.lru_cache(maxsize=64)
def compile_policy(spec: PolicySpec, arch: str | None = None) -> CompiledPolicy:
    """Build the programs for ``spec`` (broker side; cached per spec and architecture).

    ``arch``: Debian's name of the target kernel's architecture when it is
    not the machine's; ``seccomp_nr`` is then that architecture's number.
    """
    import pyseccomp

    notify = policy_plan(spec)
    seccomp_nr = int(pyseccomp.resolve_syscall(_arch_token(arch), "seccomp"))
    return CompiledPolicy(
        spec,
        baseline=_export(baseline_plan(), arch),
        notify=None if notify is None else _export(notify, arch),
        seccomp_nr=seccomp_nr,
    )
