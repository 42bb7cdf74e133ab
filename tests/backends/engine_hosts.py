"""Stand-in remote Docker hosts for the engine-pool tests (``scripts/engine-hosts``).

Each host is a network namespace with its own dockerd and sshd; the tests
reach it as ``ssh://root@10.231.N.2`` through the system's ssh program, with
the key, known_hosts and configuration the script keeps (its ``ssh`` wrapper
goes first on PATH). Each host's engine is also reachable here through its
unix socket, which the tests use to look at it from outside (what ran there,
what is left) and to stop it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from pytest_isolate.container.reaping import LABEL_RUN

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "engine-hosts"
RUN = Path("/run/pytest-isolate-engine-hosts")


@dataclass(frozen=True)
class EngineHosts:
    """The hosts started, and the environment under which their ssh:// URLs work."""

    count: int
    env: dict[str, str]
    #: DOCKER_CERT_PATH of a client the hosts' TLS endpoints (tcp://10.231.N.2:2376) accept.
    certs: str

    def url(self, n: int) -> str:
        return f"ssh://root@10.231.{n}.2"

    @property
    def urls(self) -> list[str]:
        return [self.url(n) for n in range(1, self.count + 1)]

    def socket(self, n: int) -> str:
        return f"unix://{RUN}/e{n}/docker.sock"

    def host_of(self, url: str) -> int:
        return self.urls.index(url) + 1

    @contextlib.contextmanager
    def client(self, n: int) -> Iterator[Any]:
        """The docker SDK on host ``n``'s engine, through its socket here."""
        opened = docker.DockerClient(base_url=self.socket(n), timeout=30)
        try:
            yield opened
        finally:
            opened.close()

    def ours(self, n: int) -> list[dict[str, Any]]:
        """Our containers on host ``n`` (every state)."""
        with self.client(n) as opened:
            return list(opened.api.containers(all=True, filters={"label": LABEL_RUN}))

    def starts_since(self, n: int, since: float) -> int:
        """How many of our containers host ``n``'s engine started since ``since`` (epoch)."""
        with self.client(n) as opened:
            events = opened.api.events(
                since=int(since),
                until=int(time.time()) + 1,
                filters={"type": "container", "event": "start", "label": LABEL_RUN},
                decode=True,
            )
            return sum(1 for _ in events)

    def stop_engine(self, n: int) -> None:
        """Stop host ``n``'s dockerd as an administrator would (SIGTERM)."""
        pid = int((RUN / f"e{n}" / "dockerd.pid").read_text())
        os.kill(pid, signal.SIGTERM)

    def start(self) -> None:
        """Start every host that is not running (a stopped engine included)."""
        subprocess.run([str(SCRIPT), "start", str(self.count)], check=True, capture_output=True)


def start_engine_hosts(count: int = 3) -> EngineHosts:
    subprocess.run([str(SCRIPT), "start", str(count)], check=True, capture_output=True)
    printed = subprocess.run([str(SCRIPT), "env"], check=True, capture_output=True, text=True)
    env: dict[str, str] = {}
    for line in printed.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.replace("$PATH", os.environ.get("PATH", ""))
    return EngineHosts(count, {"PATH": env["PATH"]}, env["PYTEST_ISOLATE_ENGINE_HOSTS_CERTS"])


def stop_engine_hosts() -> None:
    subprocess.run([str(SCRIPT), "stop"], check=True, capture_output=True)
