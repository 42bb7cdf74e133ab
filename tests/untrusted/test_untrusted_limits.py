"""Marks may tighten a test's limits in untrusted mode, never loosen them."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from pytest_isolate.spec import SpecError
from pytest_isolate.untrusted.limits import Ceiling, options_for, parse_allow, parse_passed_env
from pytest_isolate.wire.item_data import MarkData

CEILING = Ceiling(backend="container", timeout=60.0, mem_limit=1 << 30, cpu_limit=None)


def isolate(*args: Hashable, **kwargs: Hashable) -> MarkData:
    return MarkData("isolate", args, tuple(sorted(kwargs.items())))


def test_without_a_mark_a_test_gets_the_ceiling() -> None:
    options = options_for([], CEILING)
    assert (options.spec.timeout, options.spec.mem_limit, options.spec.network) == (
        60.0,
        1 << 30,
        False,
    )
    assert options.ignored == ()


@pytest.mark.parametrize(
    ("mark", "timeout", "mem_limit", "cpu_limit"),
    [
        (isolate("container", timeout=5), 5.0, 1 << 30, None),
        (isolate("container", timeout=600), 60.0, 1 << 30, None),
        (isolate("container", mem_limit="256M"), 60.0, 256 << 20, None),
        (isolate("container", mem_limit="8G"), 60.0, 1 << 30, None),
        (isolate("container", cpu_limit=2), 60.0, 1 << 30, 2.0),
    ],
)
def test_limits_only_go_down(
    mark: MarkData, timeout: float, mem_limit: int, cpu_limit: float | None
) -> None:
    spec = options_for([mark], CEILING).spec
    assert (spec.timeout, spec.mem_limit, spec.cpu_limit) == (timeout, mem_limit, cpu_limit)


@pytest.mark.parametrize(
    ("mark", "named"),
    [
        (isolate("container", network=True), "network=True"),
        (isolate("container", read_only=False), "read_only=False"),
        (isolate("container", user="root"), "user=root"),
        (isolate("container", mounts=("/:/host:rw",)), "mounts="),
        (isolate("container", image="evil:latest"), "image=evil:latest"),
        (isolate("process"), "backend 'process'"),
        (isolate("container", timeout="soon"), "is not a number"),
    ],
)
def test_loosening_wishes_are_ignored_and_named(mark: MarkData, named: str) -> None:
    options = options_for([mark], CEILING)
    assert options.spec.network is False
    assert any(named in text for text in options.ignored), options.ignored


def test_harmless_wishes_are_not_reported() -> None:
    options = options_for([isolate("container", network=False, read_only=True)], CEILING)
    assert options.ignored == ()


def test_the_closest_mark_decides() -> None:
    spec = options_for([isolate(timeout=2), isolate(timeout=9)], CEILING).spec
    assert spec.timeout == 2.0
    assert spec.backend == "container"


def test_mark_env_adds_but_never_overrides_the_trusted_env() -> None:
    ceiling = Ceiling(backend="container", env=(("TOKEN", "trusted"),))
    mark = isolate("container", env=(("TOKEN", "forged"), ("MODE", "fast")))
    assert dict(options_for([mark], ceiling).spec.env) == {"TOKEN": "trusted", "MODE": "fast"}


def test_passed_env_copies_named_values_or_takes_given_ones() -> None:
    environ = {"DB_URL": "postgres://x", "AWS_SECRET": "no"}
    assert parse_passed_env(["DB_URL", "MODE=ci"], environ) == (
        ("DB_URL", "postgres://x"),
        ("MODE", "ci"),
    )


@pytest.mark.parametrize("entry", ["MISSING", "bad-name", "=x"])
def test_passed_env_rejects_missing_or_malformed_names(entry: str) -> None:
    with pytest.raises(SpecError):
        parse_passed_env([entry], {})


def test_the_command_line_can_allow_marks_to_ask_for_the_network() -> None:
    allowing = Ceiling(backend="container", allow=frozenset({"network"}))
    options = options_for([isolate("container", network=True)], allowing)
    assert options.spec.network is True
    assert options.ignored == ()


def test_the_command_line_can_allow_marks_to_raise_limits() -> None:
    allowing = Ceiling(backend="container", timeout=60.0, allow=frozenset({"limits"}))
    assert options_for([isolate(timeout=600)], allowing).spec.timeout == 600.0


def test_allow_names_are_checked() -> None:
    assert parse_allow("network, limits") == {"network", "limits"}
    assert parse_allow(None) == frozenset()
    with pytest.raises(SpecError, match="unknown mounts; valid: limits, network"):
        parse_allow("network,mounts")
