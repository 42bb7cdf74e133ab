"""The receipt's judgement: what the kernel says of a target against what its backend promised."""

from __future__ import annotations

import pytest

from pytest_isolate.target.receipt import LayerMissing, Promise, in_cgroup, judge, parse_status

SANDBOXED = parse_status(
    "Name:\tpython3\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n"
    "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
    "CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n"
    "Seccomp:\t2\nSeccomp_filters:\t2\n"
)
FULL = Promise(
    uid=(65534, 65534),
    no_new_privs=True,
    seccomp_filters=2,
    no_capabilities=True,
    empty_bounding_set=True,
    other_namespaces=(("pid", 100),),
)


def test_every_layer_in_force_is_on_the_receipt() -> None:
    assert judge(FULL, SANDBOXED, {"pid": 200}) == [
        "forked",
        "pidns",
        "uid=65534",
        "no-capabilities",
        "no_new_privs",
        "seccomp(2)",
    ]


@pytest.mark.parametrize(
    ("changes", "namespaces", "named"),
    [
        ({"Seccomp": "0", "Seccomp_filters": "0"}, {"pid": 200}, "seccomp filter"),
        ({"Seccomp_filters": "1"}, {"pid": 200}, "seccomp filter"),
        ({"NoNewPrivs": "0"}, {"pid": 200}, "no_new_privs"),
        ({"Uid": "0\t0\t0\t0"}, {"pid": 200}, "user"),
        ({"Uid": "65534\t0\t65534\t65534"}, {"pid": 200}, "user"),  # a saved root uid
        ({"CapEff": "0000000000000400"}, {"pid": 200}, "capabilities"),
        ({"CapBnd": "000001ffffffffff"}, {"pid": 200}, "capabilities"),
        ({}, {"pid": 100}, "pid namespace"),
        ({}, {}, "pid namespace"),
    ],
)
def test_a_missing_layer_fails_closed_and_is_named(
    changes: dict[str, str], namespaces: dict[str, int], named: str
) -> None:
    with pytest.raises(LayerMissing, match=named):
        judge(FULL, {**SANDBOXED, **changes}, namespaces)


def test_a_plain_process_target_promises_a_process_of_its_own_only() -> None:
    assert judge(Promise(), parse_status("Uid:\t0\t0\t0\t0\n"), {}) == ["forked"]


def test_a_kernel_without_the_filter_count_is_judged_by_the_mode() -> None:
    status = {k: v for k, v in SANDBOXED.items() if k != "Seccomp_filters"}
    assert "seccomp(2)" in judge(FULL, status, {"pid": 200})


def test_the_cgroup_of_the_broker_must_hold_the_target() -> None:
    """Judged from /proc/self/cgroup right after the join (v1 lines and v2's ``0::``)."""
    v1 = "12:freezer:/pytest-isolate/42\n5:pids:/pytest-isolate/42\n"
    assert in_cgroup(v1, "pids:/pytest-isolate/42")
    assert in_cgroup("0::/pytest-isolate/42\n", ":/pytest-isolate/42")
    assert not in_cgroup("0::/user.slice\n", ":/pytest-isolate/42")
    assert not in_cgroup("5:pids:/pytest-isolate/4200\n", "pids:/pytest-isolate/42")
    assert not in_cgroup(v1, ":/pytest-isolate/42")  # a v2 entry is not a v1 one


def test_a_bounding_set_is_judged_only_where_it_was_promised_empty() -> None:
    """An agent's child under a hardened container's root keeps a bounding set (moot with
    no_new_privs); a forked target's drop empties it."""
    status = {**SANDBOXED, "CapBnd": "00000000000000eb"}
    relaxed = Promise(uid=(65534, 65534), no_capabilities=True)
    assert "no-capabilities" in judge(relaxed, status, {})
    with pytest.raises(LayerMissing, match="CapBnd"):
        judge(FULL, status, {"pid": 200})
