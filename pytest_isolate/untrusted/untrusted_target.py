"""The untrusted target: which ones exist, and starting one whose agent collects the project.

``container:IMAGE`` (or ``container``, the default image), ``vm`` and
``chroot`` are supported. The container is the container backend's hardened one
(no network, read-only root, project mounted read-only, unprivileged user,
pids and memory limits, a fresh environment) with the limits of the run;
the agent in it runs pytest on the project with the plugin in ``--no-isolate``
mode (the per-test fork is the agent's own), collects, and waits for tests.
The VM is the vm backend's guest (``vm_target``); ``chroot`` a namespace
jail on the host's own root (``chroot_target``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_isolate.backends.agent_args import agent_base_args, coverage_for_target
from pytest_isolate.backends.container_config import ContainerConfig, config_from_spec
from pytest_isolate.backends.registry import BackendRegistry
from pytest_isolate.backends.spawned import invocation_dir
from pytest_isolate.backends.target_plugins import target_plugins
from pytest_isolate.broker.resolve import parse_matrix
from pytest_isolate.spec import Defaults, IsolateSpec, SpecError
from pytest_isolate.wire.agent_protocol import StartRequest
from pytest_isolate.wire.frames import FrameLimits

SUPPORTED = ("container", "vm", "chroot")
NOT_YET: tuple[str, ...] = ()


def parse_target(text: str, defaults: Defaults, registry: BackendRegistry) -> IsolateSpec:
    """``container:IMAGE`` -> its spec; anything else is a usage error that says what works."""
    backend = text.partition(":")[0].strip()
    if backend in NOT_YET:
        raise SpecError(
            f"--isolate-untrusted={text}: {backend!r} is not supported yet in untrusted mode; "
            "use container:IMAGE"
        )
    if backend not in SUPPORTED:
        raise SpecError(
            f"--isolate-untrusted={text!r}: unknown target; use container:IMAGE, vm or chroot"
        )
    specs = parse_matrix(text, defaults, registry)
    if len(specs) != 1:
        raise SpecError(f"--isolate-untrusted={text!r}: name exactly one target")
    return specs[0]


def container_config(spec: IsolateSpec, mem_limit: int | None) -> ContainerConfig:
    """The hardened container of the container backend, sized for the run's memory limit."""
    return replace(config_from_spec(spec, "--isolate-untrusted"), mem_limit=mem_limit)


def agent_args(config: pytest.Config, paths: Sequence[str]) -> list[str]:
    """The agent's pytest command line: the project's ini (it is inside the target now)."""
    rootdir = str(config.rootpath)
    args = [*agent_base_args(config, rootdir), "--no-isolate"]
    invocation = str(config.invocation_params.dir)
    args += collection_options(config, invocation)
    for path in paths:
        head, sep, tail = path.partition("::")
        absolute = head if os.path.isabs(head) else os.path.join(invocation, head)
        args.append(os.path.normpath(absolute) + sep + tail)
    return args


def collection_options(config: pytest.Config, invocation: str) -> list[str]:
    """Command-line options that shape collection, which now happens in the target."""
    option = config.option
    args: list[str] = []
    for dest, flag in (("ignore", "--ignore"), ("ignore_glob", "--ignore-glob")):
        for value in getattr(option, dest, None) or ():
            args.append(f"{flag}={os.path.join(invocation, str(value))}")
    for pattern in getattr(option, "doctestglob", None) or ():
        args.append(f"--doctest-glob={pattern}")
    if getattr(option, "doctestmodules", False):
        args.append("--doctest-modules")
    return args


class UntrustedTarget:
    """One started target (a container or a VM) whose agent collected the project.

    Started again by the session if it dies; ``launches`` counts the starts.
    """

    def __init__(
        self,
        config: pytest.Config,
        spec: IsolateSpec,
        mem_limit: int | None,
        limits: FrameLimits,
        network: bool = False,
    ) -> None:
        self.config = config
        self.spec = spec
        self.mem_limit = mem_limit
        self.limits = limits
        self.network = network
        self.container = (
            replace(container_config(spec, mem_limit), network=network)
            if spec.backend == "container"
            else None
        )
        self.run_id = uuid.uuid4().hex[:16]
        self.launches = 0
        self._engine: Any = None
        self._target: Any = None

    @property
    def description(self) -> str:
        if self.container is not None:
            return f"container {self.container.image!r}"
        if self.spec.backend == "chroot":
            return "a namespace jail on the host's root (uid nobody)"
        return "a QEMU VM (its own kernel)"

    def with_network(self) -> UntrustedTarget:
        """A second target like this one but with a network (``--isolate-untrusted-allow``)."""
        return UntrustedTarget(self.config, self.spec, self.mem_limit, self.limits, network=True)

    def _project(self) -> tuple[str, str, list[str]]:
        config = self.config
        rootdir = str(config.rootpath)
        return rootdir, invocation_dir(config, rootdir), agent_args(config, config.args)

    def launch(self) -> Any:
        """Start the target and its agent; returns it once collected."""
        if self._target is not None:  # a dead one: remove it before starting anew
            previous, self._target = self._target, None
            previous.close()
        self.launches += 1
        rootdir, invocation, args = self._project()
        if self.spec.backend == "chroot":
            from pytest_isolate.untrusted.chroot_target import launch_chroot

            self._target = launch_chroot(rootdir, invocation, args, self.limits, self.network)
            return self._target
        if self.container is None:
            from pytest_isolate.untrusted.vm_target import launch_vm

            self._target = launch_vm(self.spec, rootdir, invocation, args, self.limits)
            return self._target
        from pytest_isolate.backends.container_target import ContainerTarget
        from pytest_isolate.backends.inject import injected_site
        from pytest_isolate.container.engine import connect_engine
        from pytest_isolate.container.reaping import reap_leftovers, run_labels

        plugins = target_plugins(self.config)
        if self._engine is None:
            self._engine = connect_engine()
            reap_leftovers(self._engine)
        self._target = ContainerTarget.launch(
            self._engine,
            self.container,
            StartRequest(
                rootdir, invocation, tuple(args), self.limits, coverage=coverage_for_target()
            ),
            Path(injected_site(None, plugins.modules, plugins.distributions)),
            run_labels(self.run_id),
        )
        return self._target

    @property
    def current(self) -> Any:
        return self._target

    def close(self) -> None:
        target, self._target = self._target, None
        if target is not None:
            target.close()
        if self._engine is not None:
            self._engine.close()
            self._engine = None
