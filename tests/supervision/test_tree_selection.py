"""Which process tree a broker gets on this host, decided from the real mounts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_isolate.supervision.cgroup_v2 import CgroupV2Tree, find_unified_mount
from pytest_isolate.supervision.cgroupfs import cgroup2_mounts, read_words
from pytest_isolate.supervision.tree import CgroupV1Tree, make_process_tree


def _cgroup2_mounts_without_pids() -> list[Path]:
    mounts = cgroup2_mounts(Path("/proc/self/mountinfo").read_text())
    return [mount for mount in mounts if "pids" not in read_words(mount / "cgroup.controllers")]


@pytest.fixture
def hybrid_host() -> None:
    """systemd's hybrid layout: cgroup2 mounted, but every controller bound to v1."""
    if os.geteuid() != 0:
        pytest.skip("cgroup trees need root")
    if not _cgroup2_mounts_without_pids() or find_unified_mount() is not None:
        pytest.skip("not a hybrid cgroup host")


@pytest.mark.usefixtures("hybrid_host")
def test_a_cgroup2_mount_that_cannot_bound_a_fork_bomb_is_declined() -> None:
    assert CgroupV2Tree.create() is None
    for mount in _cgroup2_mounts_without_pids():
        assert not (mount / "pytest-isolate").exists()


@pytest.mark.usefixtures("hybrid_host")
def test_a_hybrid_host_gets_the_v1_tree() -> None:
    tree = make_process_tree()
    try:
        assert isinstance(tree, CgroupV1Tree)
    finally:
        tree.close()
