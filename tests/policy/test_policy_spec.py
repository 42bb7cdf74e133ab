"""PolicySpec.from_options: what it accepts, how it normalises, what it refuses."""

from __future__ import annotations

import pytest

from pytest_isolate.policy import PolicyError, PolicySpec


def test_no_options_give_the_default_preset_answering_eperm():
    assert PolicySpec.from_options() == PolicySpec("default", (), None, "errno")


def test_names_are_deduplicated_and_sorted_so_equal_requests_share_one_filter():
    first = PolicySpec.from_options(deny=["socket", "@mount", "socket"])
    second = PolicySpec.from_options(deny=("@mount", "socket"))
    assert first == second
    assert hash(first) == hash(second)
    assert first.deny == ("@mount", "socket")


def test_a_single_name_is_accepted_as_a_list_of_one():
    assert PolicySpec.from_options(deny="@inet").deny == ("@inet",)


def test_an_empty_allow_list_is_allow_list_mode():
    spec = PolicySpec.from_options(allow=[])
    assert spec.allow == ()
    assert spec.allow_list_mode


@pytest.mark.parametrize(
    ("options", "message_parts"),
    [
        ({"policy": "paranoid"}, ["'paranoid'", "'default'", "'strict'", "'permissive'"]),
        ({"policy": 3}, ["policy", "3", "'default'"]),
        ({"on_violation": "ignore"}, ["on_violation", "'ignore'", "'errno'", "'kill'"]),
        ({"deny": ["sockett"]}, ["deny", "'sockett'", "did you mean", "'socket'"]),
        ({"deny": ["@network"]}, ["deny", "'@network'", "'@network-io'", "'@inet'"]),
        ({"allow": ["@nope"]}, ["allow", "'@nope'", "'@mount'"]),
        ({"deny": 5}, ["deny", "int", "5"]),
        ({"deny": {"socket": True}}, ["deny", "dict"]),
        ({"deny": ["socket", 7]}, ["deny", "7"]),
        ({"allow": [""]}, ["allow", "''"]),
        ({"allow": b"socket"}, ["allow", "bytes"]),
    ],
)
def test_invalid_options_raise_policy_error_naming_the_value_and_the_choices(
    options, message_parts
):
    with pytest.raises(PolicyError) as caught:
        PolicySpec.from_options(**options)
    for part in message_parts:
        assert part in str(caught.value)


def test_policy_error_is_a_value_error():
    assert issubclass(PolicyError, ValueError)


def test_direct_construction_is_validated_too():
    with pytest.raises(PolicyError, match="'socket', 'bind'"):
        PolicySpec(deny=("socket", "bind"))
    with pytest.raises(PolicyError, match="paranoid"):
        PolicySpec(preset="paranoid")
