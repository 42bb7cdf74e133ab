"""The create arguments of a hardened container, decided purely.

:func:`hardened_create_kwargs` returns keyword arguments for the SDK's
low-level ``APIClient.create_container`` with the host configuration spelled
as the Docker API's own JSON fields (``NetworkMode``, ``ReadonlyRootfs``...),
so what we ask the engine for is visible and table-tested without an engine.

Choices, and why:

- No network (``NetworkMode: none``) unless asked: the target is hostile.
- Read-only root file system, writable tmpfs ``/tmp`` only: a test cannot
  plant anything that outlives it, and the image stays pristine.
- ``CapDrop: ALL`` and ``no-new-privileges``: uid 65534 with no capabilities
  and no way to regain any through setuid binaries.
- Memory swap equal to memory: the limit is a limit, not a hint.
- ``Init: false``: our agent wants to be PID 1. As PID 1 of the container's
  PID namespace, ``kill(-1, SIGKILL)`` sweeps every process a test left
  behind, and when the agent exits the kernel kills whatever remains, so
  "agent gone" means "container empty". An init (tini) in between would add
  a layer that outlives the agent's intent.
- ``stdin_open`` with ``detach=False``: the SDK then sets ``StdinOnce``, so
  when the broker's end of the attach socket closes (even by SIGKILL), the
  agent's stdin ends, it exits, and ``AutoRemove`` takes the container away:
  a lifeline that needs no reaper.
- ``use_config_proxy=False``: the SDK would otherwise copy proxy settings
  from ``~/.docker/config.json`` into the container's environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UNPRIVILEGED_USER = "65534:65534"
DEFAULT_PIDS_LIMIT = 512
DEFAULT_TMPFS_OPTIONS = "rw,nosuid,nodev,size=256m,mode=1777"


@dataclass(frozen=True)
class BindMount:
    """A host path shown inside the container (read-only unless said otherwise)."""

    host_path: str
    container_path: str
    read_only: bool = True

    def as_api_bind(self) -> str:
        return f"{self.host_path}:{self.container_path}:{'ro' if self.read_only else 'rw'}"


def _memory_bytes(limit: int | str) -> int:
    """``512m``, ``1g``, ``1048576`` -> bytes (units as docker's CLI reads them)."""
    if isinstance(limit, int):
        return limit
    text = limit.strip().lower().removesuffix("b")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def hardened_create_kwargs(
    image: str,
    command: Sequence[str],
    *,
    network: bool = False,
    user: str = UNPRIVILEGED_USER,
    read_only: bool = True,
    mem_limit: int | str | None = None,
    pids_limit: int | None = DEFAULT_PIDS_LIMIT,
    cpus: float | None = None,
    binds: Sequence[BindMount] = (),
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    workdir: str | None = None,
    tmpfs: Mapping[str, str] | None = None,
    auto_remove: bool = True,
    init: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``engine.api.create_container(**kwargs)``."""
    environment = {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    environment.update(env or {})
    host_config: dict[str, Any] = {
        # "default" is the engine's own choice; our dockerd has no bridge, so
        # network=True fails there instead of inventing one.
        "NetworkMode": "default" if network else "none",
        "ReadonlyRootfs": read_only,
        "Tmpfs": dict(tmpfs) if tmpfs is not None else {"/tmp": DEFAULT_TMPFS_OPTIONS},
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "AutoRemove": auto_remove,
        "Init": init,
        "Binds": [bind.as_api_bind() for bind in binds],
        "IpcMode": "private",
    }
    if pids_limit is not None:
        host_config["PidsLimit"] = pids_limit
    if mem_limit is not None:
        memory = _memory_bytes(mem_limit)
        host_config["Memory"] = memory
        host_config["MemorySwap"] = memory
    if cpus is not None:
        host_config["NanoCpus"] = int(cpus * 1e9)
    kwargs: dict[str, Any] = {
        "image": image,
        "command": list(command),
        "user": user,
        "detach": False,
        "stdin_open": True,
        "tty": False,
        "environment": [f"{key}={value}" for key, value in sorted(environment.items())],
        "labels": dict(labels or {}),
        "network_disabled": not network,
        "host_config": host_config,
        "use_config_proxy": False,
    }
    if workdir is not None:
        kwargs["working_dir"] = workdir
    return kwargs
