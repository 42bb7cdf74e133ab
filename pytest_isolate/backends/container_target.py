"""One running container with an agent in it: launch, run tests, throw away.

The thin part that touches the engine. Launch order: make sure the image is
there (or build it from ``dockerfile=``), create the container with the
hardened arguments, attach *before* start (see ``AttachedStream``), copy the
project and the injected packages in when the engine is remote, start, then
``hello`` and ``start`` with the agent, which collects and waits for tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from pytest_isolate.arches import binfmt_fix, binfmt_state
from pytest_isolate.backends.container_config import (
    SITE_PATH,
    ContainerConfig,
    create_kwargs,
    missing_image_message,
    no_python_message,
    unknown_runtime_message,
    wrong_arch_message,
    wrong_runtime_message,
)
from pytest_isolate.container.attached_stream import AttachedStream
from pytest_isolate.container.engine import Engine
from pytest_isolate.container.engine_pool import PoolMember
from pytest_isolate.container.hardening import BindMount
from pytest_isolate.supervision.agent_client import AgentClient, AgentDead
from pytest_isolate.supervision.agent_target import AgentTarget
from pytest_isolate.wire.agent_protocol import StartRequest

AGENT_COMMAND = ("python3", "-m", "pytest_isolate.agent")
HELLO_TIMEOUT = 120.0
COLLECT_TIMEOUT = 900.0
#: Not copied into a remote container: caches, VCS data, virtual environments.
COPY_EXCLUDED = frozenset(
    {
        ".git",
        "__pycache__",
        ".pytest_cache",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        "node_modules",
        ".venv",
    }
)


class ContainerStartError(RuntimeError):
    """The container or its agent could not be started; the message says why and how to fix it."""


class _AttachedByteStream:
    """An ``AttachedStream`` as the client's byte stream (stdout only; stderr kept aside)."""

    def __init__(self, stream: AttachedStream) -> None:
        self.stream = stream

    def sendall(self, data: bytes, /) -> None:
        self.stream.sendall(data)

    def recv(self, size: int, /) -> bytes:
        try:  # everything pending, so the poll on fileno() never misses buffered bytes
            return self.stream.read(1 << 22, timeout=0)
        except TimeoutError:
            raise BlockingIOError from None

    def fileno(self) -> int:
        return self.stream.fileno()


class ContainerTarget(AgentTarget):
    """A started container whose agent has collected and waits for ``run`` requests."""

    #: The engine of ``--isolate-engines`` it runs on (None without a pool).
    member: PoolMember | None = None

    def __init__(self, engine: Engine, container_id: str, stream: AttachedStream) -> None:
        self.engine = engine
        self.container_id = container_id
        self.stream = stream
        self.client = AgentClient(
            _AttachedByteStream(stream), describe_stream_end=self.describe_end
        )

    @classmethod
    def launch(
        cls,
        engine: Engine,
        config: ContainerConfig,
        request: StartRequest,
        site: Path,
        labels: dict[str, str],
        wait: bool = True,
    ) -> ContainerTarget:
        """Create, attach and start the container; its agent says hello and collects.

        ``wait=False``: return once the start request is sent; the agent
        collects while the broker does other work, and ``finish_start`` reads
        its answers (a fresh container started while the test before runs).
        """
        started = time.monotonic()
        arch = config.foreign
        if arch is not None and (missing := binfmt_state(arch)) is not None:
            raise ContainerStartError(
                f"{arch.debian} containers cannot run here: {missing}; fix: {binfmt_fix(arch)}"
            )
        image = ensure_image(engine, config, request.rootdir)
        image_ready = time.monotonic()
        copy_mode = not engine.is_local
        binds = [BindMount(request.rootdir, request.rootdir), BindMount(str(site), SITE_PATH)]
        kwargs = create_kwargs(
            config, image, AGENT_COMMAND, binds=binds, labels=labels, copy_mode=copy_mode
        )
        import docker.errors

        try:
            container_id = engine.api.create_container(**kwargs)["Id"]
        except docker.errors.ImageNotFound:
            raise ContainerStartError(missing_image_message(image)) from None
        except docker.errors.APIError as exc:
            if config.runtime and "runtime" in str(exc).lower():
                registered = list((engine.api.info().get("Runtimes") or {}).keys())
                raise ContainerStartError(
                    unknown_runtime_message(config.runtime, registered)
                ) from None
            raise
        stream = AttachedStream.attach(engine.api, container_id)
        target = cls(engine, container_id, stream)
        target.start_steps = [("image", image_ready - started)]
        step = target.step_done("create", image_ready)
        try:
            if copy_mode:
                copy_in(
                    engine,
                    container_id,
                    [(site, SITE_PATH), (Path(request.rootdir), request.rootdir)],
                )
                step = target.step_done("copy in", step)
            try:
                engine.api.start(container_id)
            except docker.errors.APIError as exc:
                text = str(exc)
                if "executable file not found" in text or "no such file" in text.lower():
                    raise ContainerStartError(no_python_message(image, _first_line(text))) from None
                raise ContainerStartError(
                    f"container of {image!r} did not start: {_first_line(text)}"
                ) from None
            step = target.step_done("start", step)
            if config.runtime:  # fail closed: never a test under another runtime than asked
                got = engine.api.inspect_container(container_id)["HostConfig"].get("Runtime")
                if got != config.runtime:
                    raise ContainerStartError(wrong_runtime_message(config.runtime, str(got)))
            if not wait:
                target.handshake_ahead(request)
                target.started_in = time.monotonic() - started
                return target
            try:
                target.handshake(request, HELLO_TIMEOUT, COLLECT_TIMEOUT)
            except AgentDead as exc:
                raise ContainerStartError(f"the agent in {image!r} did not start: {exc}") from None
        except BaseException:
            target.close()
            raise
        target.started_in = time.monotonic() - started
        return target

    def finish_start(self) -> None:
        """The answers of a container started ahead (``launch(wait=False)``).

        ``started_in`` is then what its test waited for: the launch, and
        whatever of the agent's start the test before did not cover.
        """
        waited = time.monotonic()
        try:
            self.finish_handshake(HELLO_TIMEOUT, COLLECT_TIMEOUT)
        except BaseException:
            self.close()
            raise
        self.started_in += time.monotonic() - waited

    @property
    def alive(self) -> bool:
        """Its agent answers, and its engine was not lost meanwhile."""
        return super().alive and (self.member is None or self.member.lost is None)

    def describe_end(self) -> str:
        """Why the stream ended: the container's state and the agent's last stderr."""
        words = ["the container engine or the container went away"]
        with contextlib.suppress(Exception):
            state = self.engine.api.inspect_container(self.container_id)["State"]
            words = [f"the container exited with status {state.get('ExitCode')}"]
            if state.get("OOMKilled"):
                words.append("killed by the OOM killer (container memory limit)")
        tail = self.stream.stderr_tail.decode("utf-8", "replace").strip()
        if tail:
            words.append("its stderr ended with:\n" + tail[-3000:])
        return "; ".join(words)

    def close(self) -> None:
        """Stop and remove the container now (the agent's shutdown would take longer)."""
        import docker.errors

        self.client.shutdown()
        self.stream.close_stdin()
        with contextlib.suppress(docker.errors.APIError):
            self.engine.api.remove_container(self.container_id, force=True)
        self.stream.close()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:500] if text.strip() else "no detail"


def ensure_image(engine: Engine, config: ContainerConfig, rootdir: str) -> str:
    """The image to run: ``config.image``, or one built from ``config.dockerfile``."""
    import docker.errors

    if config.dockerfile is None:
        try:
            facts = engine.api.inspect_image(config.image)
        except docker.errors.ImageNotFound:
            raise ContainerStartError(missing_image_message(config.image)) from None
        wanted = config.foreign
        if wanted is not None:  # an image of the machine's architecture would run natively
            has = str(facts.get("Architecture") or "")
            if wanted.docker_architecture != has:
                raise ContainerStartError(wrong_arch_message(config.image, has, wanted))
        return config.image
    dockerfile = Path(rootdir, config.dockerfile)
    try:
        content = dockerfile.read_bytes()
    except OSError as exc:
        raise ContainerStartError(f"dockerfile {str(dockerfile)!r} cannot be read: {exc}") from None
    tag = "pytest-isolate/built:" + hashlib.sha256(content).hexdigest()[:16]
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.api.inspect_image(tag)
        return tag
    try:
        engine.client.images.build(
            fileobj=io.BytesIO(content), tag=tag, rm=True, forcerm=True, network_mode="none"
        )
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise ContainerStartError(
            f"building {str(dockerfile)!r} failed: {_first_line(str(exc))}"
        ) from None
    return tag


def copy_in(engine: Engine, container_id: str, trees: Sequence[tuple[Path, str]]) -> None:
    """Copy host trees into a created container, owned by root and not writable by the test."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for source, destination in trees:
            archive.add(str(source), arcname=destination.lstrip("/"), filter=_readonly_entry)
    engine.api.put_archive(container_id, "/", buffer.getvalue())


def _readonly_entry(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if os.path.basename(info.name) in COPY_EXCLUDED:
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    readable = 0o555 if info.isdir() or info.mode & 0o111 else 0o444
    info.mode = (info.mode & ~0o022) | readable
    return info
