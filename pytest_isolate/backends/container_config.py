"""What a container target is made of, decided purely from an ``IsolateSpec``.

One container serves every test whose :class:`ContainerConfig` is equal
(per-test options such as ``timeout``, ``cpu_limit`` and ``env`` are applied
per test by the agent). Everything here is free of OS and engine calls, so
the hardening choices and the error wording are table-tested.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pytest_isolate.arches import Arch, arch_named, foreign_arch, host_arch, needs_emulation
from pytest_isolate.container.hardening import (
    DEFAULT_PIDS_LIMIT,
    UNPRIVILEGED_USER,
    BindMount,
    hardened_create_kwargs,
)
from pytest_isolate.images.recipe import image_tag
from pytest_isolate.policy.engine_profile import engine_profile_json
from pytest_isolate.spec import IsolateSpec, SpecError

DEFAULT_IMAGE = "pytest-isolate/debian:bookworm"
#: Where the injected packages (pytest, pytest_isolate...) appear in the container.
SITE_PATH = "/opt/pytest-isolate/site"
#: Memory of a container with no ``mem_limit``: bounded, but roomy.
DEFAULT_CONTAINER_MEMORY = 2 << 30
#: Added to ``mem_limit`` for the agent itself and the /tmp tmpfs, which the
#: container's memory cgroup also counts; the test's own cap is RLIMIT_AS.
AGENT_MEMORY_HEADROOM = 256 << 20
ROOT_USERS = ("root", "0", "root:root", "0:0")
#: gVisor's own processes and threads (its kernel, one stub per address space on
#: the ptrace platform) count against the container's pids limit too: without
#: room for them, a sandbox with pids_limit=64 dies before its first test.
GVISOR_PIDS_HEADROOM = 256
#: A root agent needs these to drop its children to an unprivileged uid, to
#: give them a scratch directory and remove it, and to kill what they leave
#: behind; the children lose every capability when they drop.
ROOT_AGENT_CAPABILITIES = ("SETUID", "SETGID", "KILL", "CHOWN", "DAC_OVERRIDE", "FOWNER")

KEYWORDS = {
    "image": f"image to run in (str), or a list of images for a matrix; default {DEFAULT_IMAGE}",
    "dockerfile": "build the image from this Dockerfile (path relative to the rootdir)",
    "user": f"user in the container (default {UNPRIVILEGED_USER}); 'root' makes the agent "
    "root and its test children drop to nobody",
    "read_only": "read-only root file system with a tmpfs /tmp (default True)",
    "mounts": "extra host paths: ['HOST:CONTAINER[:ro|rw]', ...], read-only by default",
    "cpus": "CPU share of the container, e.g. 1.5",
    "platform": "image platform, e.g. linux/arm64 (needs emulation support in the engine)",
    "arch": "CPU architecture of the container, by Debian's name: amd64, i386, arm64, armhf, "
    "ppc64el, riscv64; a foreign one runs under qemu-user (default: the machine's own)",
    "runtime": "the engine's container runtime, e.g. 'runsc' for gVisor's user-space kernel "
    "(default: the engine's own; --isolate-container-runtime sets it for every test)",
}
_RUNTIME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ContainerConfig:
    """Everything that makes two tests need different containers."""

    image: str = DEFAULT_IMAGE
    dockerfile: str | None = None
    user: str = UNPRIVILEGED_USER
    read_only: bool = True
    mounts: tuple[BindMount, ...] = ()
    cpus: float | None = None
    platform: str | None = None
    runtime: str | None = None
    #: Debian's name of an architecture other than the machine's; None for the machine's own
    arch: str | None = None
    network: bool = False
    mem_limit: int | None = None
    pids_limit: int = DEFAULT_PIDS_LIMIT

    @property
    def runs_as_root(self) -> bool:
        return self.user in ROOT_USERS

    @property
    def foreign(self) -> Arch | None:
        """The container's architecture when it is not the machine's."""
        return None if self.arch is None else arch_named(self.arch)

    @property
    def container_memory(self) -> int:
        if self.mem_limit is None:
            return DEFAULT_CONTAINER_MEMORY
        return self.mem_limit + AGENT_MEMORY_HEADROOM


def parse_mount(value: Hashable, where: str) -> BindMount:
    """``"HOST:CONTAINER[:ro|rw]"`` or a frozen dict with source/target/read_only."""
    if isinstance(value, str):
        parts = value.split(":")
        mode = "ro"
        if len(parts) == 3:
            mode = parts.pop()
        if len(parts) != 2 or mode not in ("ro", "rw") or not all(p.startswith("/") for p in parts):
            raise SpecError(
                f"{where}: mounts entry {value!r} must be 'HOST:CONTAINER[:ro|rw]' "
                "with absolute paths"
            )
        return BindMount(parts[0], parts[1], read_only=mode == "ro")
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        fields = dict(value)
        source, target = fields.get("source"), fields.get("target")
        read_only = fields.get("read_only", True)
        if (
            isinstance(source, str)
            and isinstance(target, str)
            and source.startswith("/")
            and target.startswith("/")
            and isinstance(read_only, bool)
            and set(fields) <= {"source", "target", "read_only"}
        ):
            return BindMount(source, target, read_only)
    raise SpecError(
        f"{where}: mounts entry {value!r} must be 'HOST:CONTAINER[:ro|rw]' or "
        "{'source': HOST, 'target': CONTAINER, 'read_only': bool}"
    )


def _optional_str(spec: IsolateSpec, name: str, where: str) -> str | None:
    value = spec.option(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise SpecError(f"{where}: {name}={value!r} must be a non-empty string")
    return value


def config_from_spec(spec: IsolateSpec, where: str = "isolate('container')") -> ContainerConfig:
    """The container a spec needs; SpecError for values that cannot work."""
    image = spec.option("image", DEFAULT_IMAGE)
    if not isinstance(image, str) or not image:
        raise SpecError(f"{where}: image={image!r} must be an image name (or a list of them)")
    user = _optional_str(spec, "user", where) or UNPRIVILEGED_USER
    read_only = spec.option("read_only", True)
    if not isinstance(read_only, bool):
        raise SpecError(f"{where}: read_only={read_only!r} must be True or False")
    cpus = spec.option("cpus")
    if cpus is not None and (
        isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0
    ):
        raise SpecError(f"{where}: cpus={cpus!r} must be a positive number")
    runtime = _optional_str(spec, "runtime", where)
    if runtime is not None and not _RUNTIME_NAME.fullmatch(runtime):
        raise SpecError(f"{where}: runtime={runtime!r} must be a runtime's name, e.g. 'runsc'")
    arch = foreign_arch(spec.option("arch"), where)
    if arch is not None and spec.seccomp is not None:
        why = (
            "qemu-user refuses to load a seccomp filter for the program it emulates, and the "
            "kernel sees the host's system calls, not the emulated ones"
            if needs_emulation(arch)
            else f"a per-test filter is compiled for {host_arch().debian} system calls only"
        )
        raise SpecError(
            f"{where}: seccomp= cannot be enforced in an {arch.debian} container: {why}; such a "
            "container gets the baseline filter from the engine instead. Drop seccomp= for "
            "this test, or run it in the machine's own architecture"
        )
    platform = _optional_str(spec, "platform", where)
    if arch is not None and platform is not None and platform != arch.docker_platform:
        raise SpecError(
            f"{where}: platform={platform!r} and arch={arch.debian!r} disagree "
            f"({arch.debian} is {arch.docker_platform}); give only arch="
        )
    if arch is not None:
        image = image_tag(image, arch) if spec.option("image") else default_image(arch)
    raw_mounts = spec.option("mounts", ())
    if isinstance(raw_mounts, str) or not isinstance(raw_mounts, tuple):
        raise SpecError(f"{where}: mounts={raw_mounts!r} must be a list")
    return ContainerConfig(
        image=image,
        dockerfile=_optional_str(spec, "dockerfile", where),
        user=user,
        read_only=read_only,
        mounts=tuple(parse_mount(m, where) for m in raw_mounts),
        cpus=float(cpus) if cpus is not None else None,
        platform=arch.docker_platform if arch is not None else platform,
        runtime=runtime,
        arch=arch.debian if arch is not None else None,
        network=bool(spec.network),
        mem_limit=spec.mem_limit,
        pids_limit=spec.pids_limit or DEFAULT_PIDS_LIMIT,
    )


def default_image(arch: Arch | None) -> str:
    """The builder's image for ``arch``: bookworm where Debian has that port, else a later suite."""
    if arch is None:
        return DEFAULT_IMAGE
    repository, _, suite = DEFAULT_IMAGE.rpartition(":")
    if suite not in arch.suites:
        suite = arch.suites[0]
    return image_tag(f"{repository}:{suite}", arch)


def split_images(spec: IsolateSpec) -> list[IsolateSpec]:
    """``image=[a, b]`` and ``arch=[x, y]`` -> one spec per pair, labelled ``container:IMAGE@ARCH``.

    The label names the architecture only when one was asked for.
    """
    images = spec.option("image", DEFAULT_IMAGE)
    if isinstance(images, str):
        images = (images,)
    arches = spec.option("arch")
    if arches is None or isinstance(arches, str):
        arches = (arches,)
    if not isinstance(images, tuple) or not images or not isinstance(arches, tuple) or not arches:
        return [spec]  # validate() names the problem
    out = []
    for image in images:
        for arch in arches:
            single = spec.with_options(image=image, **({} if arch is None else {"arch": arch}))
            variant = str(image) if arch is None else f"{image}@{arch}"
            out.append(replace(single, variant=variant))
    return out


def create_kwargs(
    config: ContainerConfig,
    image: str,
    command: Sequence[str],
    *,
    binds: Sequence[BindMount],
    labels: dict[str, str],
    copy_mode: bool,
) -> dict[str, Any]:
    """Create arguments for the engine: the hardened defaults, loosened only as asked.

    In copy mode (remote engine) files are written into the container's own
    layer before it starts, so the root file system cannot be read-only and
    /tmp cannot be a tmpfs (it would hide a project copied under /tmp); the
    copies are owned by root and not writable by the test's user instead.
    """
    kwargs = hardened_create_kwargs(
        image,
        command,
        network=config.network,
        user=config.user,
        read_only=config.read_only and not copy_mode,
        mem_limit=config.container_memory,
        pids_limit=config.pids_limit + (GVISOR_PIDS_HEADROOM if config.runtime == "runsc" else 0),
        cpus=config.cpus,
        binds=[*binds, *config.mounts] if not copy_mode else list(config.mounts),
        env={"PYTHONPATH": SITE_PATH},
        labels=labels,
        workdir="/",
        tmpfs={} if copy_mode else None,
    )
    if config.runs_as_root:
        kwargs["host_config"]["CapAdd"] = list(ROOT_AGENT_CAPABILITIES)
    if config.platform:
        kwargs["platform"] = config.platform
    if config.foreign is not None:  # the baseline filter, loaded natively by the runtime
        kwargs["host_config"]["SecurityOpt"].append(f"seccomp={engine_profile_json()}")
    if config.runtime:
        kwargs["host_config"]["Runtime"] = config.runtime
    return kwargs


# -- error wording -----------------------------------------------------------
def unknown_runtime_message(runtime: str, registered: Sequence[str]) -> str:
    """The engine has no runtime of that name: which it has, and how to add gVisor's."""
    known = ", ".join(sorted(registered)) or "none reported"
    fix = (
        "install gVisor (apt-get install runsc) and register it with the engine: "
        'dockerd --add-runtime runsc=/usr/bin/runsc, or a "runtimes" entry in '
        "/etc/docker/daemon.json, then restart dockerd"
        if runtime == "runsc"
        else f"register {runtime!r} with the engine (dockerd --add-runtime NAME=PATH)"
    )
    return f"the engine has no container runtime {runtime!r} (it has: {known}); {fix}"


def wrong_runtime_message(asked: str, got: str) -> str:
    """The container started under another runtime than asked: it is not used (fail closed)."""
    return (
        f"the container was asked to run under {asked!r} but the engine started it under "
        f"{got!r}; not running the test without the runtime it asked for"
    )


def missing_image_message(image: str) -> str:
    """The image is not in the engine: how to get it, only with a command that can work."""
    from pytest_isolate.images.recipe import KNOWN_SUITES, UnknownFlavourError, recipe_for

    if image.startswith("pytest-isolate/"):
        try:
            recipe = recipe_for(image)
        except UnknownFlavourError:
            known = ", ".join(f"pytest-isolate/debian:{s}" for s in KNOWN_SUITES)
            fix = f"the image builder makes {known} only; name one of those, or an image you built"
        else:
            fix = f"build it: {recipe.build_command}"
    else:
        fix = f"pull or build it first (docker pull {image})"
    return f"image {image!r} is not in the container engine; {fix}"


def wrong_arch_message(image: str, has: str, wanted: Arch) -> str:
    """The image exists but for another architecture: Docker would run it emulated, or not."""
    from pytest_isolate.images.recipe import recipe_for

    return (
        f"image {image!r} is built for {has or 'an unknown architecture'}, not {wanted.debian} "
        f"({wanted.docker_platform}); name an image of that architecture, or build one: "
        f"{recipe_for(default_image(wanted)).build_command}"
    )


_NO_MODULE = re.compile(r"No module named '([^']+)'")


def missing_module_hint(text: str, image: str) -> str | None:
    """'the image lacks module X' when an import error inside names a missing module."""
    match = _NO_MODULE.search(text)
    if match is None:
        return None
    module = match.group(1)
    return (
        f"the image {image!r} lacks the Python module {module!r} "
        f"(install it in the image, or inject it with a dockerfile=)"
    )


def no_python_message(image: str, detail: str) -> str:
    return (
        f"image {image!r} has no usable python3 on PATH; the agent needs Python 3.9+ "
        f"in the image ({detail})"
    )
