"""Saved guests: restored from a snapshot of their shape, each with its own RNG and clock.

Real QEMU throughout. Every test uses its own cache directory (the kernel
and initramfs are copied from the user's cache by hard link when possible,
so nothing is rebuilt), which keeps snapshot files of one test from another.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vm_helpers import qemu_alive

from pytest_isolate.vm import Guest, VMConfig, reseed
from pytest_isolate.vm.cache import cache_dir
from pytest_isolate.vm.checkpoint_handshake import CHECKPOINT, launch_payload
from pytest_isolate.vm.launch import resolve
from pytest_isolate.vm.snapshot import KEEP, MAX_AGE, TEMP_AGE, stale

#: Prints 32 random bytes from the kernel, the guest's clock and where its stack is, then exits.
SAMPLE = (
    "import os, sys, time; "
    "stack = [line.split()[0] for line in open('/proc/self/maps') if '[stack]' in line][0]; "
    "sys.stdout.write(os.urandom(32).hex() + ' ' + repr(time.time()) + ' ' + stack + '\\n')"
)


def sample_config(**overrides: object) -> VMConfig:
    values: dict[str, object] = {
        "command": (sys.executable, "-c", SAMPLE),
        "env": (("PATH", "/usr/bin:/bin"),),
        "accel": "tcg",
        "memory_mib": 512,
    }
    values.update(overrides)
    return VMConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache of our own, seeded with the user's kernel and initramfs."""
    shared = cache_dir()
    mine = tmp_path / "cache"
    (mine / "vm").mkdir(parents=True, mode=0o700)
    for entry in shared.iterdir():
        if entry.name.startswith(("vmlinux-", "initramfs-", "accel-")):
            try:
                os.link(entry, mine / "vm" / entry.name)
            except OSError:
                shutil.copy2(entry, mine / "vm" / entry.name)
    monkeypatch.setenv("PYTEST_ISOLATE_CACHE", str(mine))
    yield mine / "vm"


def snapshots_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("snapshot-*"))


def leftovers(directory: Path) -> list[Path]:
    return sorted(directory.glob(".snapshot-*"))


def run_sample(config: VMConfig) -> tuple[Guest, str, float]:
    """Start (restoring if possible), read the sample; returns guest, random hex + stack, skew."""
    guest = Guest.start(config, snapshots=True)
    try:
        guest.wait_ready()
        guest.channel.settimeout(60)
        data = b""
        while not data.endswith(b"\n"):
            chunk = guest.channel.recv(4096)
            if not chunk:
                break
            data += chunk
        skew_at = time.time()
        random_hex, guest_time, stack = data.decode().split()
    finally:
        guest.kill()
    return guest, f"{random_hex} {stack}", float(guest_time) - skew_at


def test_first_boot_saves_and_later_starts_restore(private_cache: Path) -> None:
    first, _, _ = run_sample(sample_config())
    assert not first.restored
    assert first.snapshot_note is None
    assert "save" in first.timings
    [saved] = snapshots_in(private_cache)
    print(
        f"\nsave {first.timings['save']:.2f} s, "
        f"{first.timings['snapshot_bytes'] / (1 << 20):.0f} MiB"
    )
    second, _, _ = run_sample(sample_config())
    assert second.restored
    assert second.snapshot_note is None
    assert snapshots_in(private_cache) == [saved]
    print(f"restore {second.timings['restore']:.2f} s")


def test_restored_siblings_have_their_own_random_bytes_and_the_hosts_clock(
    private_cache: Path,
) -> None:
    run_sample(sample_config())  # saves
    samples = [run_sample(sample_config()) for _ in range(2)]
    assert all(guest.restored for guest, _, _ in samples)
    (_, sample_a, skew_a), (_, sample_b, skew_b) = samples
    random_a, stack_a = sample_a.split()
    random_b, stack_b = sample_b.split()
    assert random_a != random_b
    assert stack_a != stack_b  # the command started after the reseed: its own layout
    assert abs(skew_a) < 1.0 and abs(skew_b) < 1.0, (skew_a, skew_b)


def test_the_seed_is_gone_before_the_command_runs(private_cache: Path) -> None:
    code = "import os, sys; sys.stdout.write(repr(sorted(os.listdir('/pi'))) + '\\n')"
    guest = Guest.start(sample_config(command=(sys.executable, "-c", code)), snapshots=True)
    try:
        guest.wait_ready()
        guest.channel.settimeout(60)
        listing = guest.channel.recv(4096).decode()
    finally:
        guest.kill()
    assert "'seed'" not in listing
    assert "busybox" in listing


def test_a_snapshot_of_another_shape_is_not_reused(private_cache: Path) -> None:
    run_sample(sample_config(memory_mib=512))
    other, _, _ = run_sample(sample_config(memory_mib=640))
    assert not other.restored
    assert len(snapshots_in(private_cache)) == 2
    again, _, _ = run_sample(sample_config(memory_mib=640))
    assert again.restored


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_snapshot_falls_back_to_a_boot_and_says_so(
    private_cache: Path, damage: str
) -> None:
    run_sample(sample_config())
    [saved] = snapshots_in(private_cache)
    if damage == "truncate":
        with open(saved, "r+b") as handle:
            handle.truncate(saved.stat().st_size // 2)
    else:
        saved.write_bytes(b"QEVM" + os.urandom(4096))
    guest, sample, _ = run_sample(sample_config())
    assert not guest.restored
    assert len(sample.split()[0]) == 64
    assert guest.snapshot_note is not None
    assert "could not be restored" in guest.snapshot_note
    assert "booted normally" in guest.snapshot_note
    # the bad file was replaced by a good one
    assert run_sample(sample_config())[0].restored


def test_no_qemu_and_no_temporary_file_is_left_behind(private_cache: Path) -> None:
    guests = [run_sample(sample_config())[0] for _ in range(2)]
    assert guests[1].restored
    assert not any(qemu_alive(guest.pid) for guest in guests)
    assert leftovers(private_cache) == []
    assert [path.name for path in snapshots_in(private_cache)] == [
        path.name for path in snapshots_in(private_cache) if path.suffix == ".qemu"
    ]


def test_start_and_kill_of_a_restored_guest_leave_no_descriptor_behind(
    private_cache: Path,
) -> None:
    run_sample(sample_config())
    before = set(os.listdir("/proc/self/fd"))
    guest = Guest.start(sample_config(), snapshots=True)
    assert guest.restored
    guest.kill()
    assert set(os.listdir("/proc/self/fd")) <= before


# --- pruning (pure) -----------------------------------------------------------------


def test_pruning_drops_dead_saves_old_snapshots_and_the_least_recently_used() -> None:
    now = 1_000_000_000.0
    entries = [
        (".snapshot-a.qemu.x1", now - TEMP_AGE - 1),  # a save that died
        (".snapshot-b.qemu.x2", now - 5),  # a save in progress
        ("snapshot-old.qemu", now - MAX_AGE - 1),
        ("vmlinux-6.1", now - MAX_AGE - 1),  # not ours to prune
    ]
    entries += [(f"snapshot-{index}.qemu", now - index) for index in range(KEEP + 2)]
    doomed = stale(entries, now)
    assert ".snapshot-a.qemu.x1" in doomed
    assert ".snapshot-b.qemu.x2" not in doomed
    assert "snapshot-old.qemu" in doomed
    assert "vmlinux-6.1" not in doomed
    kept = [f"snapshot-{index}.qemu" for index in range(KEEP)]
    assert not set(kept) & set(doomed)
    assert {f"snapshot-{KEEP}.qemu", f"snapshot-{KEEP + 1}.qemu"} <= set(doomed)


# --- the reseed helper and its seed (pure) ------------------------------------------


def test_the_reseed_code_is_its_assembly_source(tmp_path: Path) -> None:
    if not (shutil.which("as") and shutil.which("objcopy")):
        pytest.skip("GNU as and objcopy are needed to re-assemble reseed.S")
    source = Path(reseed.__file__).with_name("reseed.S")
    subprocess.run(["as", "--64", "-o", tmp_path / "r.o", source], check=True)
    binary = tmp_path / "r.bin"
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", tmp_path / "r.o", binary], check=True)
    assert binary.read_bytes() == reseed.CODE


def test_the_reseed_helper_is_a_static_executable_that_fails_without_its_seed(
    tmp_path: Path,
) -> None:
    """On the host there is no /pi/seed: it stops at step 2, before touching anything."""
    assert not os.path.exists("/pi/seed")
    program = tmp_path / "reseed"
    program.write_bytes(reseed.executable())
    program.chmod(0o700)
    assert subprocess.run([program], check=False).returncode == 2


def test_the_seed_file_is_a_timespec_then_a_rand_pool_info() -> None:
    data = reseed.seed_file(1_700_000_000_123_456_789, bytes(range(64)))
    assert len(data) == 88  # what the helper insists on reading
    assert struct.unpack("<qqii", data[:24]) == (1_700_000_000, 123_456_789, 512, 64)
    assert data[24:] == bytes(range(64))


def test_the_launch_payload_is_a_size_line_and_an_archive_with_the_seed() -> None:
    payload = launch_payload("run() { :; }\n", seed=b"\x01" * 64, now_ns=5)
    size, _, archive = payload.partition(b"\n")
    assert int(size) == len(archive)
    assert b"pi/launch.sh\0" in archive and b"pi/seed\0" in archive
    assert reseed.seed_file(5, b"\x01" * 64) in archive
    assert CHECKPOINT == b"pytest-isolate checkpoint\n"


def test_a_snapshot_that_cannot_be_written_leaves_the_guest_running(private_cache: Path) -> None:
    target = Path(resolve(sample_config()).snapshot_file())
    target.mkdir()  # neither loadable nor replaceable
    guest, sample, _ = run_sample(sample_config())
    assert not guest.restored
    assert len(sample.split()[0]) == 64
    assert guest.snapshot_note is not None and "could not be saved" in guest.snapshot_note
    assert leftovers(private_cache) == []


FRESH_PROJECT = """
from pytest_isolate import isolate

pytestmark = isolate("vm", fresh=True, memory=512)


def test_one():
    pass


def test_two():
    pass
"""


def test_the_run_says_once_that_a_damaged_snapshot_was_not_used(
    private_cache: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(0o755)
    (project / "test_fresh.py").write_text(FRESH_PROJECT)
    checkout = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=checkout)
    env.pop("PYTEST_ADDOPTS", None)
    # Default verbosity: the boot steps (saved, restored) are shown; -q leaves them out.
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "isolate"]

    def run(*args: str) -> str:
        done = subprocess.run(
            [*command, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = run("-k", "test_one")
    assert "saved the guest for later starts" in first
    for saved in snapshots_in(private_cache):
        saved.write_bytes(b"not a migration stream")
    # Each guest started by its own test, so that both say how they started (a fresh
    # guest started ahead, while the test before runs, starts silently).
    second = run("--isolate-no-prefork")
    assert second.count("pytest-isolate: vm the saved guest could not be restored (") == 1, second
    assert "booted normally instead" in second
    assert "restored the saved guest in" in second  # the second test uses the new snapshot


def test_the_broker_closes_its_qmp_socket_once_the_guest_is_saved_or_restored(
    private_cache: Path,
) -> None:
    for expect_restored in (False, True):
        guest = Guest.start(sample_config(), snapshots=True)
        try:
            guest.wait_ready()
            assert guest.restored is expect_restored
            assert guest._qmp is None  # nothing left that could steer QEMU
        finally:
            guest.kill()
