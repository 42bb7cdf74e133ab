"""The syscall group vocabulary and the script that generates it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_isolate.policy import syscall_groups
from pytest_isolate.policy.groups import DATA_FILE, group_descriptions, systemd_version

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "generate_syscall_groups.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("generate_syscall_groups", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_group_data_records_the_systemd_version_it_came_from():
    assert systemd_version().startswith("252")
    assert json.loads(DATA_FILE.read_text())["source"] == "systemd-analyze syscall-filter"


def test_the_named_groups_of_the_issue_exist():
    groups = syscall_groups()
    for name in (
        "@mount", "@module", "@network-io", "@privileged", "@raw-io", "@reboot", "@swap",
        "@clock", "@debug", "@obsolete", "@keyring", "@process", "@file-system", "@inet",
    ):  # fmt: skip
        assert groups[name], name
    assert "mount" in groups["@mount"]
    assert "kexec_load" in groups["@reboot"]


def test_nested_groups_are_flattened():
    groups = syscall_groups()
    assert set(groups["@chown"]) <= set(groups["@privileged"])
    assert set(groups["@network-io"]) <= set(groups["@system-service"])


def test_inet_is_our_pseudo_group_over_socket():
    assert syscall_groups()["@inet"] == ("socket",)
    assert "AF_INET6" in group_descriptions()["@inet"]


def test_the_parser_flattens_a_sample_of_systemd_output():
    script = _load_script()
    sample = (
        "@default\n    # Always permitted\n    exit\n\n"
        "@known\n    # Known\n    exit\n    mount\n\n"
        "@mount\n    # Mounting\n    mount\n\n"
        "@outer\n    # Nested\n    @mount\n    reboot\n\n"
        "# Not showing unlisted system calls\n"
    )
    document = script.build_document(sample, "999")
    assert document["systemd_version"] == "999"
    assert document["groups"]["@outer"] == {
        "description": "Nested",
        "includes": ["@mount"],
        "syscalls": ["mount", "reboot"],
    }


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_committed_data_matches_what_the_script_generates_here():
    installed = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True)
    if systemd_version() not in installed.stdout:
        pytest.skip(f"the data pins systemd {systemd_version()}; this machine has another")
    check = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
