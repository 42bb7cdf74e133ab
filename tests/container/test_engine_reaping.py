"""Leftover containers of dead brokers are found by their labels and removed."""

from __future__ import annotations

import os
import socket

import pytest
from container_helpers import ECHO_LOOP, TEST_RUN_ID, Launch, container_exists, dead_pid

from pytest_isolate.container.engine import Engine
from pytest_isolate.container.reaping import (
    LABEL_BROKER_PID,
    LABEL_HOST,
    LABEL_RUN,
    is_leftover,
    reap_leftovers,
    run_labels,
)
from pytest_isolate.liveness import owner_is_gone, owner_tag, pid_is_alive

HERE = "this-host"


def _gone(owner: str) -> bool:
    return owner in ("200", "200.4026532000")


@pytest.mark.parametrize(
    ("labels", "leftover"),
    [
        ({LABEL_RUN: "r", LABEL_HOST: HERE, LABEL_BROKER_PID: "200"}, True),
        ({LABEL_RUN: "r", LABEL_HOST: HERE, LABEL_BROKER_PID: "200.4026532000"}, True),
        ({LABEL_RUN: "r", LABEL_HOST: HERE, LABEL_BROKER_PID: "100"}, False),
        ({LABEL_RUN: "r", LABEL_HOST: "other-host", LABEL_BROKER_PID: "200"}, False),
        ({LABEL_RUN: "r", LABEL_HOST: HERE}, False),
        ({LABEL_RUN: "r", LABEL_HOST: HERE, LABEL_BROKER_PID: "-1"}, False),
        ({LABEL_RUN: "r", LABEL_HOST: HERE, LABEL_BROKER_PID: "abc"}, False),
        ({LABEL_HOST: HERE, LABEL_BROKER_PID: "200"}, False),
    ],
)
def test_only_containers_of_a_dead_broker_on_this_host_are_leftovers(
    labels: dict[str, str], leftover: bool
) -> None:
    assert is_leftover(labels, hostname=HERE, owner_gone=_gone) is leftover


def test_run_labels_name_the_run_this_process_and_this_host() -> None:
    assert run_labels("r1") == {
        LABEL_RUN: "r1",
        LABEL_BROKER_PID: owner_tag(),
        LABEL_HOST: socket.gethostname(),
    }


def test_pid_liveness_is_read_from_the_kernel() -> None:
    assert pid_is_alive(os.getpid())
    assert not pid_is_alive(dead_pid())
    assert not owner_is_gone(owner_tag())
    assert owner_is_gone(str(dead_pid()))


def test_a_dead_brokers_container_is_reaped(engine: Engine, launch: Launch) -> None:
    orphan_id, _ = launch(ECHO_LOOP, labels=run_labels(TEST_RUN_ID, owner=str(dead_pid())))
    assert orphan_id in [reaped.container_id for reaped in reap_leftovers(engine)]
    assert not container_exists(engine, orphan_id)


def test_a_live_brokers_container_is_left_alone(engine: Engine, launch: Launch) -> None:
    mine_id, stream = launch(ECHO_LOOP)
    assert stream.read_exactly(6, timeout=10) == b"ready\n"
    assert mine_id not in [reaped.container_id for reaped in reap_leftovers(engine)]
    assert container_exists(engine, mine_id)


def test_another_hosts_container_is_left_alone(engine: Engine, launch: Launch) -> None:
    labels = run_labels(TEST_RUN_ID, owner=str(dead_pid()), hostname="elsewhere.example")
    theirs_id, _ = launch(ECHO_LOOP, labels=labels)
    assert theirs_id not in [reaped.container_id for reaped in reap_leftovers(engine)]
    assert container_exists(engine, theirs_id)
