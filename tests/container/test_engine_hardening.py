"""What a hardened container asks the engine for (pure, no engine)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_isolate.container.hardening import BindMount, hardened_create_kwargs


def _host(**options: Any) -> dict[str, Any]:
    host_config: dict[str, Any] = hardened_create_kwargs("img", ["true"], **options)["host_config"]
    return host_config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("NetworkMode", "none"),
        ("ReadonlyRootfs", True),
        ("CapDrop", ["ALL"]),
        ("SecurityOpt", ["no-new-privileges"]),
        ("AutoRemove", True),
        ("Init", False),
        ("PidsLimit", 512),
        ("Binds", []),
        ("IpcMode", "private"),
    ],
)
def test_defaults_are_hardened(field: str, value: object) -> None:
    assert _host()[field] == value


def test_tmp_is_the_only_writable_place_by_default() -> None:
    assert list(_host()["Tmpfs"]) == ["/tmp"]


def test_defaults_run_as_nobody_with_stdin_open_and_no_tty() -> None:
    kwargs = hardened_create_kwargs("img", ["python3"])
    assert kwargs["user"] == "65534:65534"
    assert (kwargs["stdin_open"], kwargs["detach"], kwargs["tty"]) == (True, False, False)
    assert kwargs["network_disabled"] is True
    assert kwargs["use_config_proxy"] is False


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"mem_limit": "512m"}, {"Memory": 512 << 20, "MemorySwap": 512 << 20}),
        ({"mem_limit": "1g"}, {"Memory": 1 << 30, "MemorySwap": 1 << 30}),
        ({"mem_limit": 4096}, {"Memory": 4096, "MemorySwap": 4096}),
        ({"mem_limit": "64MB"}, {"Memory": 64 << 20, "MemorySwap": 64 << 20}),
        ({"cpus": 1.5}, {"NanoCpus": 1_500_000_000}),
        ({"pids_limit": 64}, {"PidsLimit": 64}),
        ({"network": True}, {"NetworkMode": "default"}),
        ({"read_only": False}, {"ReadonlyRootfs": False}),
        ({"init": True}, {"Init": True}),
        ({"auto_remove": False}, {"AutoRemove": False}),
        (
            {"binds": [BindMount("/work/p", "/work/p"), BindMount("/o", "/out", read_only=False)]},
            {"Binds": ["/work/p:/work/p:ro", "/o:/out:rw"]},
        ),
        ({"tmpfs": {"/scratch": "size=1m"}}, {"Tmpfs": {"/scratch": "size=1m"}}),
    ],
)
def test_limits_and_mounts_map_to_engine_fields(
    options: dict[str, Any], expected: dict[str, object]
) -> None:
    host = _host(**options)
    assert {key: host[key] for key in expected} == expected


def test_no_limit_means_no_field() -> None:
    host = _host(pids_limit=None)
    assert not {"PidsLimit", "Memory", "NanoCpus"} & set(host)


def test_env_labels_workdir_and_user_pass_through() -> None:
    kwargs = hardened_create_kwargs(
        "img",
        ["python3", "-m", "pytest_isolate.agent"],
        env={"A": "1", "HOME": "/home/t"},
        labels={"k": "v"},
        workdir="/work/p",
        user="1000:1000",
    )
    assert kwargs["environment"] == ["A=1", "HOME=/home/t", "PYTHONDONTWRITEBYTECODE=1"]
    assert kwargs["labels"] == {"k": "v"}
    assert kwargs["working_dir"] == "/work/p"
    assert kwargs["user"] == "1000:1000"
    assert kwargs["command"] == ["python3", "-m", "pytest_isolate.agent"]
