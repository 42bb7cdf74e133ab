"""The pure decisions of the cgroup trees, table-tested without touching a cgroup."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_isolate.supervision.cgroup_v2 import (
    choose_kill_method,
    controllers_to_enable,
    find_unified_mount,
    layout_for,
    stale_groups,
)
from pytest_isolate.supervision.cgroupfs import cgroup2_mounts, parse_keyed

UNIFIED = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""

#: systemd's hybrid layout, as on the development host: cgroup2 without controllers.
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
37 31 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_the_unified_hierarchy_is_found_at_sys_fs_cgroup() -> None:
    assert cgroup2_mounts(UNIFIED) == [Path("/sys/fs/cgroup")]


def test_v1_controllers_and_other_file_systems_are_not_cgroup2() -> None:
    assert cgroup2_mounts(HYBRID) == [Path("/sys/fs/cgroup/unified")]


def test_sys_fs_cgroup_comes_first_and_others_keep_their_order() -> None:
    text = (
        "50 1 0:40 / /mnt/b rw - cgroup2 none rw\n"
        "51 1 0:40 / /sys/fs/cgroup rw - cgroup2 none rw\n"
        "52 1 0:40 / /mnt/a rw - cgroup2 none rw\n"
    )
    assert cgroup2_mounts(text) == [Path("/sys/fs/cgroup"), Path("/mnt/b"), Path("/mnt/a")]


def test_escaped_mount_points_are_decoded() -> None:
    text = "50 1 0:40 / /mnt/with\\040space\\134x rw shared:3 master:1 - cgroup2 none rw\n"
    assert cgroup2_mounts(text) == [Path("/mnt/with space\\x")]


def test_a_bind_mount_of_a_subgroup_is_not_the_hierarchy() -> None:
    text = "50 1 0:40 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n"
    assert cgroup2_mounts(text) == []


@pytest.mark.parametrize("line", ["", "garbage", "1 2 3 - cgroup2", "1 2 0:1 / /x rw -"])
def test_malformed_mountinfo_lines_are_skipped(line: str) -> None:
    assert cgroup2_mounts(line + "\n") == []


def test_memory_events_are_read_by_key() -> None:
    text = "low 0\nhigh 0\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n"
    assert parse_keyed(text)["oom_kill"] == 1
    assert parse_keyed("populated 1\nfrozen 0\n") == {"populated": 1, "frozen": 0}


def test_keyed_lines_that_are_not_numbers_are_ignored() -> None:
    assert parse_keyed("oom_kill x\n\nmax 3\n") == {"max": 3}


@pytest.mark.parametrize(
    ("available", "enabled", "expected"),
    [
        ({"cpu", "io", "memory", "pids"}, set(), ["pids", "memory"]),
        ({"cpu", "memory", "pids"}, {"memory"}, ["pids"]),
        ({"memory", "pids"}, {"memory", "pids"}, []),
        ({"pids"}, set(), ["pids"]),  # memory controller disabled (cgroup_disable=memory)
        ({"hugetlb"}, set(), []),  # a hybrid host's unified hierarchy
    ],
)
def test_only_offered_controllers_not_yet_on_are_enabled(
    available: set[str], enabled: set[str], expected: list[str]
) -> None:
    assert controllers_to_enable(available, enabled) == expected


@pytest.mark.parametrize(
    ("has_kill", "has_freeze", "expected"),
    [(True, True, "kill"), (False, True, "freeze"), (False, False, "signal")],
)
def test_the_kill_method_is_the_strongest_the_kernel_has(
    has_kill: bool, has_freeze: bool, expected: str
) -> None:
    assert choose_kill_method(has_kill, has_freeze) == expected


def test_the_layout_is_one_leaf_per_broker_under_our_group() -> None:
    layout = layout_for(Path("/sys/fs/cgroup"), "4242")
    assert layout.parent == Path("/sys/fs/cgroup/pytest-isolate")
    assert layout.leaf == Path("/sys/fs/cgroup/pytest-isolate/4242")


def test_stale_groups_are_those_of_dead_brokers_only() -> None:
    gone = {"200", "400", "2.4026532001"}
    names = ["100", "200", "300", "400", "2.4026532001", "2.4026532002", "not-a-pid", "-5"]
    assert stale_groups(names, lambda name: name in gone) == ["2.4026532001", "200", "400"]


def _fake_mount(tmp_path: Path, name: str, controllers: str) -> Path:
    """A directory that stands for a cgroup2 mount as far as its ``cgroup.controllers`` goes."""
    mount = tmp_path / name
    mount.mkdir()
    (mount / "cgroup.controllers").write_text(controllers + "\n")
    return mount


def test_a_cgroup2_mount_without_the_pids_controller_is_not_used(tmp_path: Path) -> None:
    bare = _fake_mount(tmp_path, "unified", "hugetlb")
    full = _fake_mount(tmp_path, "full", "cpu memory pids")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"1 1 0:1 / {bare} rw - cgroup2 cgroup2 rw\n")
    assert find_unified_mount(mountinfo) is None
    mountinfo.write_text(
        f"1 1 0:1 / {bare} rw - cgroup2 cgroup2 rw\n2 1 0:2 / {full} rw - cgroup2 cgroup2 rw\n"
    )
    assert find_unified_mount(mountinfo) == full
