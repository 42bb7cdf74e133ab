"""What container a spec asks for, decided purely (no engine needed)."""

from __future__ import annotations

import pytest

from pytest_isolate.backends.container import ContainerBackend
from pytest_isolate.backends.container_config import (
    AGENT_MEMORY_HEADROOM,
    DEFAULT_IMAGE,
    ContainerConfig,
    config_from_spec,
    create_kwargs,
    missing_image_message,
    missing_module_hint,
    parse_mount,
    split_images,
)
from pytest_isolate.container.hardening import BindMount
from pytest_isolate.spec import IsolateSpec, SpecError, freeze

BOOKWORM = "pytest-isolate/debian:bookworm"
TRIXIE = "pytest-isolate/debian:trixie"


def spec(**options: object) -> IsolateSpec:
    common = {
        k: options.pop(k)
        for k in list(options)
        if k in ("timeout", "mem_limit", "env", "fresh", "network", "seccomp", "pids_limit")
    }
    base = IsolateSpec(backend="container", **common)  # type: ignore[arg-type]
    return base.with_options(**{k: freeze(v) for k, v in options.items()})


def test_per_test_options_share_one_container() -> None:
    a = config_from_spec(spec(image=BOOKWORM, timeout=1.0, env=(("A", "1"),)))
    b = config_from_spec(spec(image=BOOKWORM, timeout=9.0))
    assert a == b


@pytest.mark.parametrize(
    "other",
    [
        spec(image=TRIXIE),
        spec(image=BOOKWORM, network=True),
        spec(image=BOOKWORM, mem_limit=1 << 28),
        spec(image=BOOKWORM, pids_limit=10),
        spec(image=BOOKWORM, user="root"),
        spec(image=BOOKWORM, mounts=["/srv:/srv"]),
    ],
)
def test_container_level_options_need_another_container(other: IsolateSpec) -> None:
    assert config_from_spec(other) != config_from_spec(spec(image=BOOKWORM))


def test_default_image_is_our_bookworm_image() -> None:
    assert config_from_spec(spec()).image == DEFAULT_IMAGE == BOOKWORM


def test_a_list_of_images_makes_one_labelled_variant_each() -> None:
    variants = split_images(spec(image=[BOOKWORM, TRIXIE]))
    assert [v.label for v in variants] == [f"container:{BOOKWORM}", f"container:{TRIXIE}"]
    assert [v.option("image") for v in variants] == [BOOKWORM, TRIXIE]


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"image": 3}, "image=3"),
        ({"image": []}, "names no image"),
        ({"read_only": "yes"}, "read_only"),
        ({"cpus": 0}, "cpus"),
        ({"mounts": "/a:/b"}, "must be a list"),
        ({"mounts": ["relative:/b"]}, "absolute paths"),
        ({"mounts": ["/a:/b:rwx"]}, "HOST:CONTAINER"),
        ({"user": ""}, "user"),
        ({"seccomp": "paranoid"}, "paranoid"),
        ({"seccomp": freeze({"deny": ["no_such_call"]})}, "no_such_call"),
    ],
)
def test_unusable_values_are_usage_errors(options: dict[str, object], complaint: str) -> None:
    with pytest.raises(SpecError, match=complaint):
        ContainerBackend().validate(spec(**options), "t.py::test")


@pytest.mark.parametrize(
    ("value", "mount"),
    [
        ("/a:/b", BindMount("/a", "/b", True)),
        ("/a:/b:rw", BindMount("/a", "/b", False)),
        (
            freeze({"source": "/a", "target": "/b", "read_only": False}),
            BindMount("/a", "/b", False),
        ),
    ],
)
def test_mounts_are_read_only_unless_said(value: object, mount: BindMount) -> None:
    assert parse_mount(value, "here") == mount  # type: ignore[arg-type]


def test_create_arguments_are_hardened_by_default() -> None:
    config = ContainerConfig(image=BOOKWORM)
    kwargs = create_kwargs(
        config, BOOKWORM, ["python3"], binds=[BindMount("/p", "/p")], labels={}, copy_mode=False
    )
    host = kwargs["host_config"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and "CapAdd" not in host
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 512 and host["Memory"] == 2 << 30
    assert host["Binds"] == ["/p:/p:ro"] and "/tmp" in host["Tmpfs"]
    assert kwargs["user"] == "65534:65534" and kwargs["working_dir"] == "/"


def test_copy_mode_has_no_binds_and_a_writable_layer() -> None:
    config = ContainerConfig(image=BOOKWORM)
    kwargs = create_kwargs(
        config, BOOKWORM, ["python3"], binds=[BindMount("/p", "/p")], labels={}, copy_mode=True
    )
    host = kwargs["host_config"]
    assert host["Binds"] == [] and host["ReadonlyRootfs"] is False and host["Tmpfs"] == {}


def test_a_root_agent_keeps_only_what_it_needs_to_drop_its_children() -> None:
    kwargs = create_kwargs(
        ContainerConfig(user="root"), BOOKWORM, ["python3"], binds=[], labels={}, copy_mode=False
    )
    assert set(kwargs["host_config"]["CapAdd"]) == {
        "SETUID",
        "SETGID",
        "KILL",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
    }


def test_mem_limit_leaves_headroom_for_the_agent() -> None:
    assert ContainerConfig(mem_limit=1 << 28).container_memory == (1 << 28) + AGENT_MEMORY_HEADROOM


@pytest.mark.parametrize(
    ("image", "fix"),
    [
        (BOOKWORM, "python -m pytest_isolate image build debian:bookworm"),
        ("pytest-isolate/debian:trixie", "python -m pytest_isolate image build debian:trixie"),
        ("pytest-isolate/debian:nope", "the image builder makes pytest-isolate/debian:bookworm"),
        ("pytest-isolate/alpine:3", "the image builder makes pytest-isolate/debian:bookworm"),
        ("python:3.12-slim", "docker pull python:3.12-slim"),
    ],
)
def test_a_missing_image_message_says_how_to_get_it(image: str, fix: str) -> None:
    assert fix in missing_image_message(image)


@pytest.mark.parametrize(
    ("text", "module"),
    [
        ("E   ModuleNotFoundError: No module named 'numpy'", "'numpy'"),
        ("ImportError: No module named 'a.b'", "'a.b'"),
        ("SyntaxError: invalid syntax", None),
    ],
)
def test_a_missing_module_is_named(text: str, module: str | None) -> None:
    hint = missing_module_hint(text, BOOKWORM)
    assert (hint is None) if module is None else (module in (hint or ""))
