"""The pure decisions of the VM layer, table-tested without booting anything."""

from __future__ import annotations

import lzma
import struct
from pathlib import Path

import pytest

from pytest_isolate.vm import VMConfig, VMError
from pytest_isolate.vm.accel import decide, verdict_key
from pytest_isolate.vm.console import without_panic_trace
from pytest_isolate.vm.cpio import archive, char_device, directory, regular, symlink
from pytest_isolate.vm.errors import BootFailed, KernelMissing
from pytest_isolate.vm.host import cpu_signature
from pytest_isolate.vm.init_script import launch_script
from pytest_isolate.vm.initramfs import builtin_names, load_order, module_name, parse_modules_dep
from pytest_isolate.vm.kernel import find_payload, kernel_release, unpack_kernel
from pytest_isolate.vm.launch import choose_machine
from pytest_isolate.vm.layout import GuestLayout, plan_layout
from pytest_isolate.vm.qemu_args import (
    TCG_CPU,
    LaunchPlan,
    host_timing,
    kernel_cmdline,
    qemu_argv,
    snapshot_shape,
)
from pytest_isolate.vm.snapshot import snapshot_key

# --- acceleration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "problem", "cached", "expected"),
    [
        ("tcg", None, None, ("tcg", "TCG requested (accel='tcg')")),
        ("kvm", None, None, ("kvm", "KVM requested (accel='kvm')")),
        ("auto", "/dev/kvm does not exist", None, ("tcg", "/dev/kvm does not exist; using TCG")),
        ("auto", None, None, None),  # no verdict yet: probe
        ("auto", None, ("tcg", "earlier probe"), ("tcg", "earlier probe")),
        ("auto", None, ("kvm", "booted"), ("kvm", "booted")),
    ],
)
def test_accel_decision(
    requested: str,
    problem: str | None,
    cached: tuple[str, str] | None,
    expected: tuple[str, str] | None,
) -> None:
    assert decide(requested, problem, cached) == expected


def test_forcing_kvm_without_a_usable_device_says_how_to_fix() -> None:
    with pytest.raises(VMError, match="accel='auto' or 'tcg'"):
        decide("kvm", "/dev/kvm does not exist", None)


@pytest.mark.parametrize(
    "changed",
    [("boot2", "qemu 7.2", "k1"), ("boot1", "qemu 8.0", "k1"), ("boot1", "qemu 7.2", "k2")],
)
def test_accel_verdict_key_changes_with_reboot_qemu_or_kernel(
    changed: tuple[str, str, str],
) -> None:
    assert verdict_key(*changed) != verdict_key("boot1", "qemu 7.2", "k1")


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        ("auto", frozenset({"microvm", "q35"}), "microvm"),
        ("auto", frozenset({"q35"}), "q35"),
        ("q35", frozenset({"microvm", "q35"}), "q35"),
    ],
)
def test_machine_choice(requested: str, available: frozenset[str], expected: str) -> None:
    assert choose_machine(requested, available) == expected


# --- config -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": ()}, "command"),
        ({"command": ("x",), "accel": "hvf"}, "accel"),
        ({"command": ("x",), "machine": "pc"}, "machine"),
        ({"command": ("x",), "memory_mib": 16}, "memory_mib"),
        ({"command": ("x",), "cpus": 0}, "cpus"),
        ({"command": ("x",), "cwd": "relative"}, "cwd"),
        ({"command": ("x",), "shares": ("relative",)}, "shares"),
        ({"command": ("A=B",)}, "command"),
    ],
)
def test_invalid_config_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VMConfig(**kwargs)  # type: ignore[arg-type]


# --- kernel -----------------------------------------------------------------------


def fake_bzimage(payload: bytes, setup_sects: int = 3) -> bytes:
    image = bytearray((setup_sects + 1) * 512 + 100)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, 0x20F)
    struct.pack_into("<II", image, 0x248, 100, len(payload))
    return bytes(image) + payload + b"\x00\x01\x02\x03"  # trailing size field


def test_xz_payload_is_found_and_unpacked_to_the_elf() -> None:
    vmlinux = b"\x7fELF" + b"kernel" * 1000
    image = fake_bzimage(lzma.compress(vmlinux, format=lzma.FORMAT_XZ))
    assert find_payload(image)[2] == "xz"
    assert unpack_kernel(image) == vmlinux


def test_an_elf_kernel_needs_no_unpacking() -> None:
    assert unpack_kernel(b"\x7fELF rest") == b"\x7fELF rest"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"garbage" * 100, "not a Linux kernel"),
        (fake_bzimage(b"????????"), "unknown kernel payload"),
        (fake_bzimage(lzma.compress(b"not an elf", format=lzma.FORMAT_XZ)), "not an ELF"),
    ],
)
def test_unusable_kernel_images_are_refused(image: bytes, message: str) -> None:
    with pytest.raises(KernelMissing, match=message):
        unpack_kernel(image)


@pytest.mark.parametrize(
    ("path", "release"),
    [("/boot/vmlinuz-6.1.0-56-amd64", "6.1.0-56-amd64"), ("/k/vmlinux-6.8.0", "6.8.0")],
)
def test_kernel_release_from_file_name(path: str, release: str) -> None:
    assert kernel_release(path) == release


# --- modules and initramfs --------------------------------------------------------

MODULES_DEP = "\n".join(
    [
        "kernel/fs/netfs/netfs.ko.xz:",
        "kernel/fs/fscache/fscache.ko.xz: kernel/fs/netfs/netfs.ko.xz",
        "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/fscache/fscache.ko.xz"
        " kernel/fs/netfs/netfs.ko.xz",
        "kernel/net/9p/9pnet.ko.xz:",
        "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko"
        " kernel/drivers/virtio/virtio_ring.ko",
    ]
)


def test_module_names_ignore_compression_and_dashes() -> None:
    assert module_name("kernel/fs/9p/9p.ko.xz") == "9p"
    assert module_name("kernel/x/virtio-mmio.ko.zst") == "virtio_mmio"


def test_modules_load_dependencies_first_each_once() -> None:
    deps = parse_modules_dep(MODULES_DEP)
    order = load_order(["9p", "netfs"], deps, builtin=set())
    assert [module_name(path) for path in order] == ["netfs", "fscache", "9pnet", "9p"]


def test_builtin_modules_are_not_loaded() -> None:
    deps = parse_modules_dep(MODULES_DEP)
    builtin = builtin_names(
        "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n"
    )
    order = load_order(["virtio_mmio"], deps, builtin)
    assert [module_name(path) for path in order] == ["virtio_mmio"]


def test_a_missing_module_names_it() -> None:
    with pytest.raises(KernelMissing, match="overlay"):
        load_order(["overlay"], parse_modules_dep(MODULES_DEP), set())


def test_cpio_members_are_4_byte_aligned_newc_with_trailer() -> None:
    data = archive(
        [
            directory("pi"),
            regular("pi/f", b"abc", 0o755),
            symlink("bin", "usr/bin"),
            char_device("dev/console", 5, 1),
        ]
    )
    assert data.startswith(b"070701")
    assert data.count(b"070701") == 5
    assert b"TRAILER!!!\0" in data
    assert len(data) % 4 == 0
    assert b"pi/f\0" in data and b"usr/bin" in data


# --- launch script ----------------------------------------------------------------


def test_launch_script_quotes_every_user_value() -> None:
    script = launch_script(
        shares=[("pi0", "/work/it's here")],
        links=[("/bin", "usr/bin")],
        env=[("A", "x; rm -rf /"), ("B", "$(id)")],
        cwd="/work/it's here",
        command=["python3", "-c", "print('hi')"],
    )
    assert "share pi0 '/work/it'\"'\"'s here'" in script
    assert "'A=x; rm -rf /' 'B=$(id)'" in script
    assert "python3 -c 'print('\"'\"'hi'\"'\"')'" in script
    assert "env -i " in script


# --- layout -----------------------------------------------------------------------


def test_merged_usr_layout_shares_usr_and_links_the_rest() -> None:
    system = [("/usr", None), ("/bin", "usr/bin"), ("/lib", "usr/lib")]
    layout = plan_layout(system, ["/root/.pyenv/versions/3.11.7", "/work/main", "/usr/local/x"])
    assert layout == GuestLayout(
        shares=("/usr", "/work/main", "/root/.pyenv/versions/3.11.7"),
        links=(("/bin", "usr/bin"), ("/lib", "usr/lib")),
    )


def test_sharing_the_whole_host_is_refused() -> None:
    with pytest.raises(ValueError, match="whole host"):
        plan_layout([("/usr", None)], ["/"])


# --- QEMU and kernel command lines ------------------------------------------------


def plan(**overrides: object) -> LaunchPlan:
    values: dict[str, object] = {
        "qemu": "qemu-system-x86_64",
        "accel": "tcg",
        "machine": "microvm",
        "kernel": "/cache/vmlinux",
        "initrd": "/proc/self/fd/5",
        "kernel_cmdline": "console=ttyS0",
        "memory_mib": 512,
        "cpus": 2,
        "channel_fd": 6,
        "console_fd": 7,
        "shares": [("pi0", "/usr"), ("pi1", "/work/a,b")],
    }
    values.update(overrides)
    return LaunchPlan(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("machine", ["microvm", "q35"])
def test_qemu_is_hardened(machine: str) -> None:
    argv = qemu_argv(plan(machine=machine))
    joined = " ".join(argv)
    for flag in ("-nodefaults", "-no-user-config", "-no-reboot"):
        assert flag in argv
    assert argv[argv.index("-nic") + 1] == "none"
    assert argv[argv.index("-display") + 1] == "none"
    assert argv[argv.index("-monitor") + 1] == "none"
    assert argv[argv.index("-sandbox") + 1].startswith("on,")
    assert "spawn=deny" in joined and "elevateprivileges=deny" in joined
    assert joined.count("readonly=on") == 2
    assert "netdev" not in joined and "virtio-net" not in joined


def test_qemu_escapes_commas_in_shared_paths() -> None:
    assert "path=/work/a,,b," in " ".join(qemu_argv(plan()))


@pytest.mark.parametrize(
    ("machine", "transport"), [("microvm", "virtio-9p-device"), ("q35", "virtio-9p-pci")]
)
def test_qemu_uses_the_machines_virtio_transport(machine: str, transport: str) -> None:
    assert f"{transport},fsdev=fs0,mount_tag=pi0" in qemu_argv(plan(machine=machine))


@pytest.mark.parametrize(
    ("accel", "requested", "cpu"),
    [("kvm", None, "host"), ("tcg", None, TCG_CPU), ("tcg", "max", "max"), ("kvm", "EPYC", "EPYC")],
)
def test_cpu_model_follows_accel_unless_asked(accel: str, requested: str | None, cpu: str) -> None:
    argv = qemu_argv(plan(accel=accel, cpu=requested))
    assert argv[argv.index("-cpu") + 1] == cpu
    assert argv[argv.index("-accel") + 1] == accel


def test_the_tcg_cpu_is_x86_64_v2_without_avx() -> None:
    """What distributions build for, without the state that makes TCG context switches dear."""
    features = TCG_CPU.split(",")
    assert features[0] == "qemu64"
    assert {"+ssse3", "+sse4.1", "+sse4.2", "+popcnt", "+cx16"} <= set(features)
    assert not any("avx" in feature or "xsave" in feature for feature in features)


def test_snapshots_and_restores_talk_qmp_on_a_private_socket_and_load_from_a_descriptor() -> None:
    argv = qemu_argv(plan(qmp_fd=8, incoming_fd=9))
    joined = " ".join(argv)
    assert "socket,id=qmp,fd=8" in joined and "chardev=qmp,mode=control" in joined
    assert argv[argv.index("-monitor") + 1] == "none"  # no human monitor still
    assert argv[argv.index("-incoming") + 1] == "fd:9"
    assert "-incoming" not in qemu_argv(plan()) and "qmp" not in " ".join(qemu_argv(plan()))


def test_the_snapshot_shape_ignores_descriptors_paths_and_the_hosts_tsc_numbers() -> None:
    base = snapshot_shape(plan(kernel_cmdline="console=ttyS0 tsc_early_khz=2600000 lpj=1"))
    same = [
        plan(channel_fd=10, console_fd=11, qmp_fd=12, incoming_fd=13),
        plan(shares=[("pi0", "/elsewhere"), ("pi1", "/project")]),
        plan(kernel_cmdline="console=ttyS0 tsc_early_khz=2400000 lpj=2"),
    ]
    for other in same:
        assert snapshot_shape(other) == base
    different = [
        plan(memory_mib=1024),
        plan(cpus=1),
        plan(machine="q35"),
        plan(cpu="max"),
        plan(accel="kvm"),
        plan(shares=[("pi0", "/usr")]),
        plan(kernel_cmdline="console=ttyS0 quiet"),
    ]
    for other in different:
        assert snapshot_shape(other) != base, other


def test_the_snapshot_key_follows_qemu_the_host_cpu_and_the_files(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"k")
    key = snapshot_key(["-m", "512"], [str(kernel)], ["QEMU 7.2", "cpu a"])
    assert key == snapshot_key(["-m", "512"], [str(kernel)], ["QEMU 7.2", "cpu a"])
    assert key != snapshot_key(["-m", "512"], [str(kernel)], ["QEMU 8.0", "cpu a"])
    assert key != snapshot_key(["-m", "512"], [str(kernel)], ["QEMU 7.2", "cpu b"])
    assert key != snapshot_key(["-m", "640"], [str(kernel)], ["QEMU 7.2", "cpu a"])
    kernel.write_bytes(b"kernel, rebuilt")
    assert key != snapshot_key(["-m", "512"], [str(kernel)], ["QEMU 7.2", "cpu a"])


def test_the_host_cpu_signature_is_vendor_model_and_flags_of_the_first_cpu() -> None:
    text = "vendor_id\t: AuthenticAMD\nmodel name\t: EPYC\nflags\t\t: fpu sse\n\n"
    text += "vendor_id\t: Other\n"
    assert cpu_signature(text) == "AuthenticAMD | EPYC | fpu sse"


def test_kernel_cmdline_ends_the_guest_with_its_command_and_carries_tsc() -> None:
    words = kernel_cmdline(2600000, 10399980).split()
    assert "panic=-1" in words
    assert "tsc_early_khz=2600000" in words
    assert "lpj=10399980" in words


@pytest.mark.parametrize(
    ("cpuinfo", "hz", "expected"),
    [
        ("cpu MHz\t\t: 2599.998\nbogomips\t: 5199.99\n", 250, (2599998, 10399980)),
        ("cpu MHz : 1000.0\nbogomips : 2000.00\ncpu MHz : 3000.0\n", 1000, (1000000, 1000000)),
        ("", 250, (None, None)),
    ],
)
def test_host_timing_from_cpuinfo(
    cpuinfo: str, hz: int, expected: tuple[int | None, int | None]
) -> None:
    assert host_timing(cpuinfo, hz) == expected


# --- errors -----------------------------------------------------------------------


def test_boot_failed_carries_the_console_tail_in_its_message() -> None:
    error = BootFailed("the guest ended", "last kernel words")
    assert error.console_tail == "last kernel words"
    assert "last kernel words" in str(error)


def test_panic_trace_is_dropped_but_the_panic_line_kept() -> None:
    text = "boot\nKernel panic - not syncing: Attempted to kill init!\nCall Trace:\n regs\n"
    assert (
        without_panic_trace(text) == "boot\nKernel panic - not syncing: Attempted to kill init!\n"
    )


def test_a_failed_kvm_probe_is_explained_in_one_line_that_stands_alone() -> None:
    """The verdict is printed without the console: it quotes the console, never 'below'."""
    from pytest_isolate.vm.accel import boot_failure_words
    from pytest_isolate.vm.errors import BootFailed

    error = BootFailed(
        "the guest ended (QEMU exit status 1) before its command wrote anything; "
        "the console below usually says why",
        "early console\nkvm: entry failed, hardware error 0x7\n\n",
    )
    words = boot_failure_words(error)
    assert "below" not in words
    assert words == (
        "the guest ended (QEMU exit status 1) before its command wrote anything; "
        "its console ended with 'kvm: entry failed, hardware error 0x7'"
    )
    assert boot_failure_words(BootFailed("no output at all")) == "no output at all"
