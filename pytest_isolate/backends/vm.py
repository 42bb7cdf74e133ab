"""``isolate("vm")``: tests inside a QEMU virtual machine, with its own kernel.

The expensive part (booting a guest and importing pytest in it, seconds under
TCG) is paid once per distinct guest shape per broker: the guest runs the
agent (``python -m pytest_isolate.agent``) as its PID 1, which collects the
project once and forks a fresh child per test. ``fresh=True`` starts a guest
for that test alone. Guests are restored from a snapshot of their shape
that the first boot saved at the init's checkpoint
(``pytest_isolate.vm.snapshot``), which skips the kernel's boot. A guest
whose kernel panics or hangs, or whose agent breaks the protocol, is
destroyed; its test fails with the console tail and the next test boots a
new one.

The guest sees only the system directories, the Python prefix (where pytest
and pluggy live), this package and the project, all read-only over 9p; it has
no network device. The VM layer itself lives in ``pytest_isolate.vm``; the
agent and its broker-side client in ``pytest_isolate.agent``. This module is
the glue: pure decisions first (table-tested), then the thin class.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pytest_isolate._package import PACKAGE_DIR
from pytest_isolate.backends.agent_args import (
    capture_args,
    coverage_for_target,
    forwarded_options,
    matrix_args,
    parse_time_args,
)
from pytest_isolate.backends.announce import announce
from pytest_isolate.backends.base import Availability, TargetResult
from pytest_isolate.backends.spawned import SpawnedTargets, fresh_followers
from pytest_isolate.backends.spawned_policy import (
    check_spawned_policy,
    spawned_policy,
)
from pytest_isolate.backends.target_plugins import target_plugins
from pytest_isolate.spec import IsolateSpec, SpecError, parse_size
from pytest_isolate.supervision.agent_target import AgentTarget
from pytest_isolate.threads import start_without_signals
from pytest_isolate.vm.guest_config import ACCELS, MACHINES, VMConfig
from pytest_isolate.wire.agent_protocol import Collected, StartRequest

if TYPE_CHECKING:
    import pytest

    from pytest_isolate.supervision.agent_client import AgentClient, RunPolicy
    from pytest_isolate.supervision.context import BrokerContext
    from pytest_isolate.vm.guest import Guest
    from pytest_isolate.wire.frames import FrameLimits

logger = logging.getLogger("pytest_isolate.vm")

VM_KEYWORDS: Mapping[str, str] = {
    "kernel": "guest kernel image (default: the newest under /boot)",
    "accel": "auto (KVM if a guest boots under it, else TCG), kvm or tcg",
    "memory": "guest memory: MiB as an int, or a size such as 2G (default 1024 MiB)",
    "cpus": "guest CPUs (default 1)",
    "machine": "auto (microvm where available, else q35), microvm or q35",
    "cpu": "QEMU CPU model (default: the host's under KVM, x86-64-v2 under TCG; 'max' for AVX2)",
    "arch": "guest CPU architecture, by Debian's name: arm64 boots Debian's arm64 kernel and "
    "userland under TCG (fetch them: python -m pytest_isolate vm fetch --arch arm64); "
    "default: the machine's own",
}

DEFAULT_MEMORY_MIB = 1024
#: Seconds the agent may take to say hello after the guest is up (TCG: ~1-2 s).
HELLO_TIMEOUT = 120.0
#: Seconds to import pytest and collect in the guest (TCG runs Python ~11x slower).
COLLECT_TIMEOUT = 600.0
#: A killed test's child must be reported within this; a silent guest is destroyed.
KILL_GRACE = 10.0
#: Beyond this many node ids the agent is given their files instead.
MAX_NODEID_ARGS = 2000
CONSOLE_TAIL = 8192
GUEST_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
_PANIC = re.compile(r"Kernel panic - not syncing:[^\n]*")
_INVALID_OPCODE = re.compile(r"trap invalid opcode")
_CPU_MODEL = re.compile(r"[A-Za-z0-9_.+=-]+(,[A-Za-z0-9_.+=-]+)*")


# -- pure decisions ----------------------------------------------------------
@dataclass(frozen=True)
class GuestShape:
    """What makes two guests interchangeable: tests with equal shapes share one."""

    kernel: str | None = None
    accel: str = "auto"
    memory_mib: int = DEFAULT_MEMORY_MIB
    cpus: int = 1
    machine: str = "auto"
    cpu: str | None = None
    #: Debian's name of a guest architecture other than the machine's; None for its own
    arch: str | None = None


def parse_memory_mib(value: object, where: str) -> int:
    """MiB from an int (already MiB) or a size string (``"2G"``, ``"512M"``)."""
    if value is None:
        return DEFAULT_MEMORY_MIB
    if isinstance(value, bool):
        raise SpecError(f"{where}: memory={value!r} is not a size; use MiB or a size such as 2G")
    if isinstance(value, int):
        mib = value
    else:
        try:
            size = parse_size(value, "memory")
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
        mib = (size or 0) // (1 << 20)
    if mib < 64:
        raise SpecError(f"{where}: memory={value!r} is too small; a guest needs at least 64 MiB")
    return mib


def guest_shape(spec: IsolateSpec, where: str) -> GuestShape:
    """The guest a spec asks for; SpecError for what a VM cannot honour."""
    if spec.network:
        raise SpecError(
            f"{where}: network=True is not possible with vm: guests have no network device"
        )
    kernel = spec.option("kernel")
    if kernel is not None and not (isinstance(kernel, str) and kernel.startswith("/")):
        raise SpecError(f"{where}: kernel={kernel!r} must be an absolute path to a kernel image")
    accel = spec.option("accel", "auto")
    if accel not in ACCELS:
        raise SpecError(f"{where}: accel={accel!r}; valid values: {', '.join(ACCELS)}")
    machine = spec.option("machine", "auto")
    if machine not in MACHINES:
        raise SpecError(f"{where}: machine={machine!r}; valid values: {', '.join(MACHINES)}")
    cpus = spec.option("cpus", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= 64:
        raise SpecError(f"{where}: cpus={cpus!r} must be an integer from 1 to 64")
    memory = parse_memory_mib(spec.option("memory"), where)
    cpu = spec.option("cpu")
    if cpu is not None and not (isinstance(cpu, str) and _CPU_MODEL.fullmatch(cpu)):
        raise SpecError(
            f"{where}: cpu={cpu!r} is not a QEMU CPU model; "
            "use a name with optional features, e.g. 'max' or 'qemu64,+avx2'"
        )
    arch = _guest_arch(spec, where)
    if arch is not None and accel == "kvm":
        raise SpecError(f"{where}: accel='kvm' cannot run an {arch} guest here: it is emulated")
    return GuestShape(kernel, accel, memory, cpus, machine, cpu, arch)


def _guest_arch(spec: IsolateSpec, where: str) -> str | None:
    """``arch=``: Debian's name of a foreign guest architecture; None for the machine's own."""
    from pytest_isolate.arches import foreign_arch
    from pytest_isolate.vm.guest_arch import GUEST_ARCHES

    arch = foreign_arch(spec.option("arch"), where)
    if arch is not None and arch.debian not in GUEST_ARCHES:
        raise SpecError(
            f"{where}: arch={arch.debian!r}: vm guests can be {', '.join(GUEST_ARCHES)} "
            "(a container runs more architectures: isolate('container', arch=...))"
        )
    return None if arch is None else arch.debian


def agent_config(
    shape: GuestShape, python: str, package_dir: str, project_dirs: Sequence[str], cwd: str
) -> VMConfig:
    """The guest that runs the agent: the project and this package shared read-only.

    pytest and pluggy come from the interpreter's prefix, which the VM layer
    always shares; ``package_dir`` (this package) may live elsewhere (an
    editable install), so it is shared on its own and put on PYTHONPATH.
    Nothing of the broker's environment is passed on.
    """
    shares = tuple(dict.fromkeys([*project_dirs, package_dir]))
    return VMConfig(
        command=(python, "-m", "pytest_isolate.agent"),
        shares=shares,
        env=_agent_env(os.path.dirname(package_dir)),
        cwd=cwd,
        kernel=shape.kernel,
        accel=shape.accel,
        memory_mib=shape.memory_mib,
        cpus=shape.cpus,
        machine=shape.machine,
        cpu=shape.cpu,
    )


def foreign_agent_config(
    shape: GuestShape, site: str, project_dirs: Sequence[str], cwd: str
) -> VMConfig:
    """A guest of another architecture: its own kernel, busybox and userland (the kit).

    Its Python is the userland's; pytest, pluggy, this package and the
    broker's plugins come from the injected ``site`` (pure Python, as in a
    container), shared read-only and put on PYTHONPATH.
    """
    from pytest_isolate.vm.foreign_kit import require_kit

    assert shape.arch is not None
    kit = require_kit(shape.arch)
    return VMConfig(
        command=("/usr/bin/python3", "-m", "pytest_isolate.agent"),
        shares=tuple(dict.fromkeys([*project_dirs, site])),
        env=_agent_env(site),
        cwd=cwd,
        kernel=shape.kernel or kit.kernel,
        memory_mib=shape.memory_mib,
        cpus=shape.cpus,
        cpu=shape.cpu,
        arch=shape.arch,
        userland=kit.userland,
        modules_root=kit.modules_root,
        busybox=kit.busybox,
    )


def _agent_env(pythonpath: str) -> tuple[tuple[str, str], ...]:
    """The agent's whole environment in a guest: nothing of the broker's."""
    return (
        ("HOME", "/tmp"),
        ("LC_ALL", "C.UTF-8"),
        ("PATH", GUEST_PATH),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PYTHONPATH", pythonpath),
    )


def collection_args(
    nodeids: Sequence[str], rootdir: str, inifile: str | None, parse_time: Sequence[str] = ()
) -> list[str]:
    """pytest arguments for the agent: our plugin explicitly, then what to collect.

    The agent disables plugin autoloading, so ``-p pytest_isolate.plugin``
    brings the marker and the matrix parametrization (``test_x[vm]``) that
    the broker's node ids contain. Many node ids collapse to their files.
    """
    args = ["-p", "pytest_isolate.plugin", "-p", "no:cacheprovider", "-q", "--color=no"]
    args += ["--rootdir", rootdir]
    if inifile:
        args += ["-c", inifile]
    args += parse_time
    wanted = list(dict.fromkeys(nodeids))
    if len(wanted) > MAX_NODEID_ARGS:
        wanted = list(dict.fromkeys(nodeid.split("::", 1)[0] for nodeid in wanted))
    return args + [os.path.join(rootdir, nodeid) for nodeid in wanted]


def guest_end_words(console_tail: str, qemu_status: int | None) -> str:
    """Why a guest went away, in words, from its console and QEMU's exit status."""
    panic = _PANIC.findall(console_tail)
    if panic:
        words = f"the guest kernel panicked ({panic[-1].strip()})"
        if _INVALID_OPCODE.search(console_tail):
            words += (
                "; a program hit an instruction the guest CPU lacks: if the host's Python "
                "needs AVX2 (x86-64-v3), pass cpu='max' to the vm mark"
            )
        return words
    if qemu_status is None:
        return "the guest stopped answering (its kernel may hang)"
    return f"the guest's QEMU exited with status {qemu_status}"


# -- the thin imperative shell ------------------------------------------------
class VMBootError(Exception):
    """A guest could not be made ready; the message says why and how to fix it."""

    def __init__(self, message: str, console_tail: str = "") -> None:
        super().__init__(message)
        self.console_tail = console_tail


class _RunningGuest(AgentTarget):
    """A booted guest whose agent collected, talking over ``guest.channel``."""

    def __init__(self, guest: Guest, client: AgentClient, collected: Collected) -> None:
        self.guest = guest
        self.client = client
        self.collected = collected
        #: set once the greeting thread of a guest started ahead is done (``greet``)
        self._greeted: threading.Event | None = None
        self._greeting_failed: BaseException | None = None

    def greet(self, start: StartRequest) -> None:
        """For a guest started ahead: in a thread, its checkpoint, its hello, then ``start``.

        The init reads its launch payload from the channel with a buffered
        read, so nothing may follow the payload until the agent has spoken;
        the thread waits for the hello, then asks for the collection, and the
        test reads the answer (``finish_start``). The thread is born with every
        signal blocked, so a Ctrl-C reaches the broker's main thread.
        """
        self.pending = True
        self._greeted = greeted = threading.Event()

        def greeting() -> None:
            try:
                self.guest.wait_ready()
                self.client.hello(timeout=HELLO_TIMEOUT)
                self.client.send_start(start)
            except BaseException as exc:  # said by finish_start, in the broker's thread
                self._greeting_failed = exc
            finally:
                greeted.set()

        start_without_signals(greeting)

    def finish_start(self) -> None:
        """A guest started ahead: wait for its greeting, then read its collection.

        On failure it is killed, and the test starts a guest of its own,
        which reports what goes wrong.
        """
        assert self._greeted is not None
        waited = time.monotonic()
        try:
            self._greeted.wait()
            if self._greeting_failed is not None:
                raise self._greeting_failed
            self.collected = self.client.collection(COLLECT_TIMEOUT)
        except BaseException:
            self.close()
            raise
        self.pending = False
        self.started_in += time.monotonic() - waited

    def run(
        self,
        nodeid: str,
        spec: IsolateSpec,
        limits: FrameLimits,
        policy: RunPolicy | None = None,
        execution_count: int | None = None,
    ) -> TargetResult:
        """One test in a fresh fork in the guest; a guest that died with it is destroyed."""
        result = super().run(nodeid, spec, limits, policy, execution_count)
        if self.client.dead is not None:
            words = self.end_words()
            self.guest.kill()
            failure = result.failure or words
            if words not in failure:
                failure = f"{failure}; {words}"
            result.failure = f"{failure}; the VM was destroyed"
            result.failure_kind = result.failure_kind or "crash"
            result.sections.append(("guest console (tail)", self.guest.console_tail(CONSOLE_TAIL)))
        return result

    def end_words(self) -> str:
        status = self.guest.wait(1.0)
        return guest_end_words(self.guest.console_tail(65536), status)

    def close(self) -> None:
        if self._greeted is not None and not self._greeted.is_set():
            self.guest.end_process()  # the greeting thread sees the channel end first
            self._greeted.wait(10.0)
        else:
            self.client.shutdown()
        self.guest.kill()


class VMBackend:
    """One guest per shape per broker, booted on first use and reused."""

    name = "vm"
    #: spawned targets talk over their engine's stream; the shm ring needs a fork
    channels = ("pipe",)
    summary = "a QEMU virtual machine with its own kernel, no network, the project read-only"
    keywords: Mapping[str, str] = VM_KEYWORDS

    def __init__(self) -> None:
        self._guests = Guests()

    def availability(self) -> Availability:
        from pytest_isolate.vm import vm_available, vm_doctor

        ok, reason = vm_available()
        details = tuple((check, detail) for check, _ok, detail in vm_doctor(probe_accel=False))
        if not ok:
            return Availability(
                False,
                reason,
                "sudo apt-get install qemu-system-x86 busybox-static linux-image-amd64",
                details,
            )
        return Availability(True, reason, details=details)

    def validate(self, spec: IsolateSpec, where: str) -> None:
        for variant in self.variants(spec):
            guest_shape(variant, where)
        check_spawned_policy(spec, where)  # loaded by the agent in the test's child, in the guest

    def variants(self, spec: IsolateSpec) -> list[IsolateSpec]:
        """``arch=[a, b]``: a guest per architecture, named in the label (``vm@arm64``)."""
        arches = spec.option("arch")
        if arches is None:
            return [spec]
        if isinstance(arches, str):
            arches = (arches,)
        if not isinstance(arches, tuple) or not arches:
            return [spec]  # validate() names the problem
        return [replace(spec.with_options(arch=arch), variant=f"@{arch}") for arch in arches]

    def run(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> TargetResult:
        shape = guest_shape(spec, item.nodeid)
        try:
            policy = spawned_policy(spec, item.nodeid, arch=shape.arch)
        except SpecError as exc:
            return TargetResult(failure=f"usage error: {exc}", failure_kind="usage")
        ahead = fresh_followers(item, context, self.name, guest_shape)
        return self._guests.run(item, spec, context, shape, policy, ahead)

    def prepare_target(self, item: pytest.Item, spec: IsolateSpec, context: BrokerContext) -> None:
        """Before the test's line: boot its guest (a bad spec is reported by ``run``)."""
        with contextlib.suppress(SpecError):
            self._guests.prepare(item, spec, context, guest_shape(spec, item.nodeid))

    def close(self) -> None:
        self._guests.close()


class Guests(SpawnedTargets[GuestShape, _RunningGuest]):
    """One guest per shape, booted on first use and reused; a fresh one for ``fresh``."""

    start_errors = (VMBootError,)

    def __init__(self) -> None:
        super().__init__()
        self._accel_said = False
        self._snapshot_said = False

    def describe(self, key: GuestShape) -> str:
        return "guest"

    def earlier_failure(self, message: str) -> TargetResult:
        return _engine_failure(f"{message} (earlier in this run)")

    def start_failure(self, key: GuestShape, error: BaseException) -> TargetResult:
        return _engine_failure(str(error), getattr(error, "console_tail", ""))

    def not_collected(self, target: _RunningGuest, key: GuestShape, nodeid: str) -> TargetResult:
        return _engine_failure(
            f"the guest's pytest did not collect {nodeid!r}; "
            "it may need a module the guest cannot import (see the guest console)",
            target.guest.console_tail(CONSOLE_TAIL),
        )

    def announce_new(
        self, config: pytest.Config, key: GuestShape, target: _RunningGuest, fresh: bool
    ) -> None:
        """Nothing more: the boot announced itself, step by step."""

    def launch(
        self, item: pytest.Item, key: GuestShape, spec: IsolateSpec, context: BrokerContext
    ) -> _RunningGuest:
        """Start QEMU, wait for the agent, collect; every failure becomes ``VMBootError``."""
        from pytest_isolate.supervision.agent_client import AgentDead
        from pytest_isolate.vm import VMError

        say = _Announcer(item.config)
        guest, client, start = self._start_guest(item, key, spec, context, say.progress)
        self._say_accel(say, guest)
        try:
            guest.wait_ready()
            self._say_snapshot(say, guest)
            hello = client.hello(timeout=HELLO_TIMEOUT)
            say.line(
                f"agent up in the guest: Python {hello.python}, pytest {hello.pytest} "
                f"({say.elapsed():.1f} s)",
                step=True,
            )
            collected = client.start(start, timeout=COLLECT_TIMEOUT)
        except VMError as exc:
            tail = guest.console_tail(CONSOLE_TAIL)
            guest.kill()
            raise VMBootError(f"the VM did not boot: {exc}", tail) from None
        except AgentDead as exc:
            tail = guest.console_tail(CONSOLE_TAIL)
            guest.kill()
            raise VMBootError(f"the agent in the VM failed to start: {exc}", tail) from None
        except BaseException:
            guest.kill()
            raise
        say.line(
            f"ready: {len(collected.nodeids)} test(s) collected in the guest "
            f"({say.elapsed():.1f} s since launch)"
        )
        running = _RunningGuest(guest, client, collected)
        running.started_in = say.elapsed()
        return running

    def launch_ahead(
        self, item: pytest.Item, key: GuestShape, spec: IsolateSpec, context: BrokerContext
    ) -> _RunningGuest:
        """Start a fresh guest for the next test while this one runs, silently.

        Its agent imports pytest and collects on the other core; a thread
        sees it through its checkpoint and hello (``_RunningGuest.greet``).
        """
        started = time.monotonic()
        guest, client, start = self._start_guest(item, key, spec, context, None)
        running = _RunningGuest(guest, client, Collected(()))
        try:
            running.greet(start)
        except BaseException:
            guest.kill()
            raise
        running.started_in = time.monotonic() - started
        return running

    def _start_guest(
        self,
        item: pytest.Item,
        key: GuestShape,
        spec: IsolateSpec,
        context: BrokerContext,
        progress: Callable[[str], None] | None,
    ) -> tuple[Guest, AgentClient, StartRequest]:
        """QEMU started (restored or booting), the client on its channel, and what to collect."""
        from pytest_isolate.supervision.agent_client import AgentClient
        from pytest_isolate.vm import Guest, VMError

        config = item.config
        rootdir = str(config.rootpath)
        nodeids = [item.nodeid] if spec.fresh else _same_shape_nodeids(item, key, context)
        inifile = str(config.inipath) if config.inipath else None
        start = StartRequest(
            rootdir=rootdir,
            invocation_dir=rootdir,
            args=tuple(
                collection_args(
                    nodeids,
                    rootdir,
                    inifile,
                    target_plugins(config).args()
                    + parse_time_args(config)
                    + matrix_args(config)
                    + capture_args(config),
                )
            ),
            options=tuple(forwarded_options(config).items()),
            coverage=coverage_for_target(),
        )
        try:
            if key.arch is None:
                vm_config = agent_config(key, sys.executable, PACKAGE_DIR, [rootdir], rootdir)
            else:
                site = str(self.plugin_site(config))
                vm_config = foreign_agent_config(key, site, [rootdir], rootdir)
            # a foreign guest always boots: its reseed helper cannot serve a restored one
            guest = Guest.start(vm_config, progress=progress, snapshots=key.arch is None)
        except (VMError, ValueError, OSError) as exc:
            raise VMBootError(f"the VM could not be started: {exc}") from None
        client = AgentClient(
            guest.channel,
            kill_grace=KILL_GRACE,
            describe_stream_end=lambda: guest_end_words(guest.console_tail(65536), guest.wait(1.0)),
        )
        return guest, client, start

    def _say_snapshot(self, say: _Announcer, guest: Guest) -> None:
        """Say once per run when saved guests do not work, like the accelerator line."""
        if guest.snapshot_note is not None and not self._snapshot_said:
            self._snapshot_said = True
            say.line(guest.snapshot_note)

    def _say_accel(self, say: _Announcer, guest: Guest) -> None:
        if not self._accel_said:
            self._accel_said = True
            say.line(f"accelerator {guest.accel.upper()}: {guest.accel_reason}")


class _Announcer:
    """Boot progress on the terminal (or the log, e.g. in an xdist worker), with durations."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def line(self, text: str, *, step: bool = False) -> None:
        """A line about this guest, said once (accelerator, ready), or a ``step`` of its boot."""
        logger.info("%s", text)
        announce(self._config, f"vm {text}", step=step)

    def progress(self, text: str) -> None:
        self.line(f"[{self.elapsed():5.1f} s] {text}", step=True)


def _engine_failure(message: str, console_tail: str = "") -> TargetResult:
    result = TargetResult(failure=message, failure_kind="engine")
    if console_tail:
        result.sections.append(("guest console (tail)", console_tail))
    return result


def _same_shape_nodeids(item: pytest.Item, shape: GuestShape, context: BrokerContext) -> list[str]:
    """Node ids of every vm test of this run with ``shape``: one collection serves them all."""
    found = [item.nodeid]
    for other, spec in context.siblings(item, "vm"):
        if spec.fresh:
            continue
        with contextlib.suppress(SpecError):
            if guest_shape(spec, other.nodeid) == shape:
                found.append(other.nodeid)
    return list(dict.fromkeys(found))
