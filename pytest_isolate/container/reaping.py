"""Label what we start, and remove what a dead run left behind.

Normally a container ends with its broker: the agent reads stdin from the
broker, so when the broker dies stdin closes, the agent exits and
``AutoRemove`` removes the container. Reaping is the second line for
containers that outlived their broker anyway (a wedged agent, an engine
restart that dropped AutoRemove). Each container carries its run id, the
broker's owner tag (its pid, and its PID namespace when not the host's:
``liveness.owner_tag``) and hostname; a later run removes those whose broker
is dead.

Only containers of *this* host are judged: with a shared remote engine a pid
means nothing across machines. A pid that was reused by a live process keeps
its containers alive (the safe error); a run on another host, or a broker in
a PID namespace the judging run cannot see into, is never touched.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_isolate.liveness import owner_is_gone, owner_tag

LABEL_RUN = "org.pytest-isolate.run"
LABEL_BROKER_PID = "org.pytest-isolate.broker-pid"
LABEL_HOST = "org.pytest-isolate.host"


def run_labels(
    run_id: str, *, owner: str | None = None, hostname: str | None = None
) -> dict[str, str]:
    """The labels every container of run ``run_id`` carries."""
    return {
        LABEL_RUN: run_id,
        LABEL_BROKER_PID: owner_tag() if owner is None else owner,
        LABEL_HOST: socket.gethostname() if hostname is None else hostname,
    }


def is_leftover(
    labels: Mapping[str, str],
    *,
    hostname: str,
    owner_gone: Callable[[str], bool],
    run_label_key: str = LABEL_RUN,
) -> bool:
    """Whether a container with ``labels`` belongs to a dead broker on this host."""
    if run_label_key not in labels or labels.get(LABEL_HOST) != hostname:
        return False
    return owner_gone(labels.get(LABEL_BROKER_PID, ""))


@dataclass(frozen=True)
class ReapedContainer:
    container_id: str
    run_id: str
    broker_pid: str


def reap_leftovers(
    engine: Any,
    run_label_key: str = LABEL_RUN,
    *,
    hostname: str | None = None,
    owner_gone: Callable[[str], bool] = owner_is_gone,
) -> list[ReapedContainer]:
    """Force-remove our containers whose broker is dead; return what was removed."""
    import docker.errors

    host = socket.gethostname() if hostname is None else hostname
    reaped: list[ReapedContainer] = []
    for summary in engine.api.containers(all=True, filters={"label": run_label_key}):
        labels = summary.get("Labels") or {}
        if not is_leftover(
            labels, hostname=host, owner_gone=owner_gone, run_label_key=run_label_key
        ):
            continue
        try:
            engine.api.remove_container(summary["Id"], force=True)
        except docker.errors.NotFound:
            continue  # removed meanwhile (AutoRemove won the race)
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise
        reaped.append(
            ReapedContainer(
                summary["Id"], labels.get(run_label_key, ""), labels.get(LABEL_BROKER_PID, "")
            )
        )
    return reaped
