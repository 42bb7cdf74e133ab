"""Which project settings untrusted mode ignores, and when it must refuse instead."""

from __future__ import annotations

import pytest

from pytest_isolate.untrusted.settings import (
    REWRITE_WARNING_FILTER,
    front_door_args,
    judge_settings,
    overridden_keys,
)


@pytest.mark.parametrize(
    ("raw", "overridden", "ignored", "too_early"),
    [
        ({}, set(), [], []),
        ({"markers": "slow", "testpaths": "tests"}, set(), [], []),
        ({"addopts": "-p evil"}, set(), [], ["addopts"]),
        ({"addopts": "-p evil"}, {"addopts"}, ["addopts"], []),
        ({"addopts": ""}, set(), [], []),
        ({"pythonpath": ["src", "."]}, {"addopts"}, [], ["pythonpath"]),
        (
            {"filterwarnings": "error::evil.W", "cache_dir": "/root/.ssh", "log_file": "/x"},
            {"filterwarnings", "cache_dir", "log_file"},
            ["filterwarnings", "cache_dir", "log_file"],
            [],
        ),
    ],
)
def test_unsafe_settings_are_ignored_when_overridden_and_refused_otherwise(
    raw: dict[str, object], overridden: set[str], ignored: list[str], too_early: list[str]
) -> None:
    verdict = judge_settings(raw, frozenset(overridden))
    assert [s.key for s in verdict.ignored] == ignored
    assert list(verdict.applied_too_early) == too_early


def test_the_refusal_says_how_to_run_instead() -> None:
    verdict = judge_settings({"addopts": "-p evil", "pythonpath": "."}, frozenset())
    text = verdict.refusal("/p/pytest.ini")
    assert "/p/pytest.ini sets addopts, pythonpath" in text
    assert "python -P -m pytest_isolate.untrusted" in text
    assert "-o addopts= -o pythonpath=" in text


def test_an_ignored_setting_is_described_with_its_value_and_why() -> None:
    (setting,) = judge_settings({"pythonpath": ["src", "."]}, frozenset({"pythonpath"})).ignored
    assert setting.describe().startswith("pythonpath = 'src .': ignored because it puts")


def test_overridden_keys_come_from_dash_o_entries() -> None:
    assert overridden_keys(["addopts=", "cache_dir = x", "novalue"]) == {"addopts", "cache_dir"}
    assert overridden_keys(None) == frozenset()


def test_the_front_door_overrides_every_unsafe_key_before_the_users_arguments() -> None:
    args = front_door_args(["--isolate-untrusted=container", "-o", "addopts=-v"])
    assert args[:2] == ["-W", REWRITE_WARNING_FILTER]
    assert args[-3:] == ["--isolate-untrusted=container", "-o", "addopts=-v"]  # the user's win
    for key in (
        "addopts=",
        "pythonpath=",
        "filterwarnings=",
        "cache_dir=.pytest_cache",
        "log_file=",
    ):
        assert key in args


def test_the_front_door_leaves_cache_dir_alone_when_the_cache_is_off() -> None:
    assert not any(a.startswith("cache_dir") for a in front_door_args(["-p", "no:cacheprovider"]))
