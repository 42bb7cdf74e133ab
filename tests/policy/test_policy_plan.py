"""Which rules each filter holds: the pure part of policy compilation."""

from __future__ import annotations

import pytest

from pytest_isolate.policy import PolicyError, PolicySpec, compile_policy, preset_contents
from pytest_isolate.policy.filter_plan import (
    ALLOW,
    ENOSYS,
    KILL,
    MASK32,
    NOTIFY,
    ArgTest,
    Rule,
    baseline_plan,
    denial_label,
    policy_plan,
)


def _rules_for(rules, syscall):
    return {rule for rule in rules if rule.syscall == syscall}


def test_the_baseline_kills_kernel_attack_surface_unconditionally():
    unconditional = {
        r.syscall for r in baseline_plan().rules if r.action == KILL and r.test is None
    }
    for syscall in (
        "mount", "umount2", "pivot_root", "init_module", "kexec_load", "reboot", "swapon",
        "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
        "io_uring_setup", "ptrace", "process_vm_readv", "process_vm_writev", "seccomp",
        "unshare", "setns",
    ):  # fmt: skip
        assert syscall in unconditional


def test_the_baseline_kills_clone_only_with_a_namespace_flag():
    clone_rules = _rules_for(baseline_plan().rules, "clone")
    assert Rule("clone", KILL, ArgTest(0, 0x10000000, 0x10000000)) in clone_rules
    assert all(rule.test is not None for rule in clone_rules)
    assert len(clone_rules) == 7


def test_the_baseline_compares_ints_on_32_bits():
    prctl = _rules_for(baseline_plan().rules, "prctl")
    assert prctl == {Rule("prctl", KILL, ArgTest(0, MASK32, 22))}


def test_clone3_answers_enosys():
    assert Rule("clone3", ENOSYS) in baseline_plan().rules


def test_default_notifies_every_socket_but_not_socketpair():
    plan = policy_plan(PolicySpec())
    assert plan is not None and plan.default_action == ALLOW
    assert plan.rules == (Rule("socket", NOTIFY),)


def test_strict_also_notifies_exec():
    plan = policy_plan(PolicySpec(preset="strict"))
    assert plan is not None
    assert {r.syscall for r in plan.rules} == {"socket", "execve", "execveat"}


def test_permissive_needs_no_notifying_filter():
    assert policy_plan(PolicySpec(preset="permissive")) is None
    assert not compile_policy(PolicySpec(preset="permissive")).uses_notification


def test_inet_denial_is_four_masked_family_rules():
    plan = policy_plan(PolicySpec.from_options(policy="permissive", deny=["@inet"]))
    assert plan is not None
    assert {r.test for r in plan.rules} == {ArgTest(0, MASK32, f) for f in (2, 10, 16, 17)}


def test_the_notifying_filter_never_notifies_what_loading_and_handing_over_need():
    plan = policy_plan(PolicySpec.from_options(deny=["seccomp", "@system-service"]))
    assert plan is not None
    handoff_and_channel = {"seccomp", "sendmsg", "sendto", "recvmsg", "recvfrom", "read", "write"}
    assert not handoff_and_channel & {r.syscall for r in plan.rules}


def test_allow_list_mode_defaults_to_notify_and_keeps_a_floor():
    plan = policy_plan(PolicySpec.from_options(allow=[]))
    assert plan is not None and plan.default_action == NOTIFY
    allowed = {r.syscall for r in plan.rules}
    assert {"exit_group", "write", "rt_sigreturn", "sendmsg", "seccomp"} <= allowed
    assert "execve" not in allowed


def test_allow_list_mode_lets_an_unconditional_deny_win():
    plan = policy_plan(PolicySpec.from_options(allow=["socket", "getcwd"], deny=["socket"]))
    assert plan is not None
    assert not _rules_for(plan.rules, "socket")
    assert _rules_for(plan.rules, "getcwd") == {Rule("getcwd", ALLOW)}


def test_allow_list_mode_allows_socket_except_the_denied_families():
    plan = policy_plan(PolicySpec.from_options(allow=["socket"], deny=["@inet"]))
    assert plan is not None
    families = {r.test.value for r in _rules_for(plan.rules, "socket") if r.test}
    assert 1 in families
    assert not families & {2, 10, 16, 17}


def test_allow_list_mode_with_inet_allowed_allows_only_those_families():
    plan = policy_plan(PolicySpec.from_options(allow=["@inet"]))
    assert plan is not None
    families = {r.test.value for r in _rules_for(plan.rules, "socket") if r.test}
    assert families == {2, 10, 16, 17}


@pytest.mark.parametrize(
    ("spec", "syscall", "args", "label"),
    [
        (PolicySpec(), "socket", (2, 1, 0), "@inet"),
        (PolicySpec(), "socket", (1, 1, 0), None),
        (PolicySpec.from_options(deny=["@mount", "@process"]), "kill", (1, 9), "@process"),
        (PolicySpec.from_options(allow=["uname"]), "getcwd", (), None),
    ],
)
def test_denials_are_labelled_with_the_group_that_denied_them(spec, syscall, args, label):
    assert denial_label(spec, syscall, args) == label


def test_preset_contents_say_what_each_preset_denies():
    assert preset_contents("permissive")["denied"] == ()
    assert preset_contents("default")["denied"] == ("@inet", "socket")
    assert set(preset_contents("strict")["denied"]) >= {"execve", "execveat"}
    assert "clone(CLONE_NEW*)" in preset_contents("default")["killed"]
    assert preset_contents("default")["enosys"] == ("clone3",)
    assert preset_contents("default")["never_denied"] == (
        "close", "read", "recvfrom", "recvmsg", "sendmsg", "sendto", "write",
    )  # fmt: skip
    with pytest.raises(PolicyError, match="'strict'"):
        preset_contents("lax")


def test_compiled_programs_are_cached_per_spec():
    assert compile_policy(PolicySpec()) is compile_policy(PolicySpec.from_options())
    compiled = compile_policy(PolicySpec())
    assert compiled.programs == (compiled.notify_bpf, compiled.bpf)
    assert all(len(program) % 8 == 0 for program in compiled.programs)
