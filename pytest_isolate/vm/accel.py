"""KVM or TCG: decided by booting, remembered per host boot.

/dev/kvm being present proves nothing (here KVM guests hang at boot), so
``auto`` boots a trivial guest under KVM with a short deadline and falls back
to TCG, saying why. The verdict is cached on disk under a key that changes
when the host reboots, QEMU changes or the kernel changes, so only the first
run after such a change pays the probe.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from pathlib import Path

from pytest_isolate.vm import host
from pytest_isolate.vm.cache import cache_dir, file_key, write_atomically
from pytest_isolate.vm.errors import BootTimeout, VMError
from pytest_isolate.vm.kernel import default_kernel
from pytest_isolate.vm.progress import ProgressCallback, report

#: How long a KVM guest may take to run its first command before we give up on KVM.
KVM_PROBE_SECONDS = 6.0


def decide(
    requested: str, kvm_problem: str | None, cached: tuple[str, str] | None
) -> tuple[str, str] | None:
    """The verdict when it needs no probe, else None (probe KVM).

    ``kvm_problem`` says why /dev/kvm cannot be opened (None: it can);
    ``cached`` is an earlier probe's verdict for this host boot/QEMU/kernel.
    """
    if requested == "tcg":
        return "tcg", "TCG requested (accel='tcg')"
    if requested == "kvm":
        if kvm_problem is not None:
            raise VMError(f"accel='kvm' was requested but {kvm_problem}; use accel='auto' or 'tcg'")
        return "kvm", "KVM requested (accel='kvm')"
    if requested != "auto":
        raise ValueError(f"accel must be auto, kvm or tcg, not {requested!r}")
    if kvm_problem is not None:
        return "tcg", f"{kvm_problem}; using TCG"
    return cached


#: Bumped when the verdict's words change, so a cached verdict is not shown in old words.
VERDICT_FORMAT = "2"


def verdict_key(boot_id: str, qemu_version: str, kernel_key: str) -> str:
    text = f"{boot_id}\0{qemu_version}\0{kernel_key}\0{VERDICT_FORMAT}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_verdict(path: Path, key: str) -> tuple[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    accel, reason = data.get("accel"), data.get("reason")
    if accel in ("kvm", "tcg") and isinstance(reason, str):
        return accel, reason
    return None


def probe_kvm(kernel: str, progress: ProgressCallback = None) -> tuple[str, str]:
    """Boot a guest under KVM that prints one byte; TCG if it does not within the deadline."""
    from pytest_isolate.vm.guest import Guest
    from pytest_isolate.vm.guest_config import VMConfig

    report(progress, f"probing KVM (up to {KVM_PROBE_SECONDS:.0f} s, once per host boot)…")
    config = VMConfig(
        command=("/pi/busybox", "echo", "ready"),
        kernel=kernel,
        accel="kvm",
        memory_mib=256,
        boot_timeout=KVM_PROBE_SECONDS,
    )
    started = time.monotonic()
    try:
        with Guest.start(config) as guest:
            guest.wait_ready()
    except BootTimeout:
        return "tcg", f"KVM guest did not boot within {KVM_PROBE_SECONDS:.0f} s here; using TCG"
    except VMError as exc:
        return "tcg", f"KVM guest failed to boot here ({boot_failure_words(exc)}); using TCG"
    return "kvm", f"KVM guest booted in {time.monotonic() - started:.1f} s"


def boot_failure_words(error: BaseException) -> str:
    """Why a probe guest failed, in one line that stands alone: its console's last line.

    The verdict is printed once per run, without the console, so it names what
    the console said rather than pointing below.
    """
    words = (
        str(error).splitlines()[0].split("; the console below")[0].split("; raise boot_timeout")[0]
    )
    tail = getattr(error, "console_tail", "") or ""
    last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
    return f"{words}; its console ended with {last[:200]!r}" if last else words


def choose_accel(
    requested: str, kernel: str | None = None, progress: ProgressCallback = None
) -> tuple[str, str]:
    """("kvm" | "tcg", why) for ``requested`` in auto | kvm | tcg."""
    problem = host.kvm_device_problem() if requested != "tcg" else None
    quick = decide(requested, problem, None)
    if quick is not None:
        return quick
    kernel = kernel or default_kernel()
    key = verdict_key(host.boot_id(), host.qemu_version(host.qemu_binary()), file_key(kernel))
    path = cache_dir() / f"accel-{key}.json"
    with open(cache_dir() / "accel.lock", "w") as lock:
        # One probe at a time: xdist workers starting together wait for the first.
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _read_verdict(path, key)
        if cached is not None:
            return cached
        accel, reason = probe_kvm(kernel, progress)
        payload = {"key": key, "accel": accel, "reason": reason}
        write_atomically(path, json.dumps(payload).encode())
    return accel, reason
