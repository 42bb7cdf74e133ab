"""Reach a Docker-API engine through the docker SDK, and say so when we cannot.

Only engine access lives here: which endpoint, whether it shares our
filesystem (bind mounts) or not (copy the project in), and whether it answers.
Creating and running containers belongs to the container backend.

The endpoint is decided purely from ``base_url`` / ``DOCKER_HOST``
(:func:`parse_engine_url`, table-tested); the thin :func:`connect_engine`
then opens the SDK client.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_isolate.container.ssh_dial import SshDial

DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"

#: What to tell a user whose engine does not answer.
FIX_LOCAL_ENGINE = (
    "start the Docker engine (sudo systemctl start docker, or sudo dockerd), "
    "or set DOCKER_HOST to one that runs"
)
FIX_SDK_MISSING = "install the docker SDK: pip install 'pytest-isolate-sandbox[container]'"


class EngineUnavailableError(RuntimeError):
    """The Docker engine cannot be reached; the message says how to fix it.

    ``detail`` is the same without the words that name the engine ("does not
    answer (why); fix"), for a list that names it already (an engine pool).
    """

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


@dataclass(frozen=True)
class EngineEndpoint:
    """Where the engine is, and whether it sees our files.

    ``is_local`` is True only for a unix socket: then the daemon runs on this
    machine and a bind mount of a host path shows the host's file. Over tcp
    or ssh the daemon may be anywhere (even a loopback port may be a tunnel),
    so the project must be copied into the container.
    """

    url: str
    scheme: str
    is_local: bool


def resolve_engine_url(base_url: str | None, environ: Mapping[str, str]) -> str:
    """``base_url`` if given, else ``DOCKER_HOST``, else the default local socket."""
    if base_url:
        return base_url
    return environ.get("DOCKER_HOST") or DEFAULT_ENGINE_URL


def parse_engine_url(url: str) -> EngineEndpoint:
    """Classify an engine URL; reject schemes the SDK cannot use."""
    if url.startswith("/"):
        url = "unix://" + url
    scheme, sep, _rest = url.partition("://")
    if not sep:
        raise ValueError(
            f"pytest-isolate: engine URL {url!r} has no scheme (unix://, tcp://, ssh://)"
        )
    scheme = scheme.lower()
    if scheme == "unix":
        return EngineEndpoint(url, scheme, is_local=True)
    if scheme in ("tcp", "http", "https", "ssh"):
        return EngineEndpoint(url, scheme, is_local=False)
    raise ValueError(
        f"pytest-isolate: engine URL {url!r} has an unsupported scheme {scheme!r} "
        "(use unix://, tcp:// or ssh://)"
    )


class Engine:
    """An open connection to one Docker engine.

    ``client`` is the SDK's ``docker.DockerClient``; ``api`` its low-level
    ``APIClient`` (attach sockets, streamed imports).
    """

    def __init__(self, client: Any, endpoint: EngineEndpoint, dial: SshDial | None = None) -> None:
        self.client = client
        self.endpoint = endpoint
        self._dial = dial

    @property
    def api(self) -> Any:
        return self.client.api

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def is_local(self) -> bool:
        """True when bind mounts of host paths are possible (unix socket)."""
        return self.endpoint.is_local

    def version(self) -> dict[str, Any]:
        """The engine's version document (``Version``, ``ApiVersion``, ...)."""
        return dict(self.client.version())

    def describe(self) -> str:
        """One line for humans: engine version, API version, endpoint."""
        info = self.version()
        mode = "local (bind mounts)" if self.is_local else "remote (copy files in)"
        return (
            f"Docker engine {info.get('Version', '?')} (API {info.get('ApiVersion', '?')}) "
            f"at {self.url}, {mode}"
        )

    def runtimes(self) -> list[str]:
        """The container runtimes the engine has registered (``runc``, ``runsc``...)."""
        return sorted((self.api.info().get("Runtimes") or {}).keys())

    def close(self) -> None:
        self.client.close()
        if self._dial is not None:
            self._dial.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_engine(base_url: str | None = None, *, timeout: float = 60.0) -> Engine:
    """Open the engine named by ``base_url`` or ``DOCKER_HOST`` and check it answers.

    TLS settings (``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``) come from the
    environment as with the docker CLI. ssh:// goes through the system's ``ssh``
    program (``SshDial``). Raises :class:`EngineUnavailableError` with the fix.
    """
    if importlib.util.find_spec("docker") is None:
        raise EngineUnavailableError(
            f"pytest-isolate: the docker SDK is missing; {FIX_SDK_MISSING}"
        )
    import docker
    from docker.utils import kwargs_from_env

    endpoint = parse_engine_url(resolve_engine_url(base_url, os.environ))
    from_docker_host = base_url is None and bool(os.environ.get("DOCKER_HOST"))
    dial = None
    try:
        kwargs: dict[str, Any] = {}
        if endpoint.scheme in ("tcp", "http", "https"):  # TLS applies to these alone
            _check_tls_files(os.environ)
            kwargs = kwargs_from_env(environment=dict(os.environ))
        kwargs["base_url"] = endpoint.url
        if endpoint.scheme == "ssh":
            dial = SshDial(endpoint.url)
            kwargs["base_url"] = dial.unix_url
        if kwargs.get("tls"):
            client = _tls_client(docker, int(timeout), kwargs)
        else:
            client = docker.DockerClient(version="auto", timeout=int(timeout), **kwargs)
        client.ping()
    except Exception as exc:
        why = (dial.settled_error() or None) if dial is not None else None
        if dial is not None:
            dial.close()
        detail = _unavailable_detail(endpoint, exc, from_docker_host, why)
        raise EngineUnavailableError(
            f"pytest-isolate: Docker engine at {endpoint.url} {detail}", detail
        ) from exc
    return Engine(client, endpoint, dial)


#: The oldest API version the SDK speaks: enough to ask an engine for its own.
_OLDEST_API = "1.24"


def _tls_client(docker: Any, timeout: int, kwargs: dict[str, Any]) -> Any:
    """A client that checks the engine against DOCKER_CERT_PATH's CA, and nothing else.

    requests lets ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` from the
    environment replace the CA a session was given, so on a machine that sets
    them (many CI images do) the engine's own CA would be ignored and its
    certificate refused. So the client stops reading the environment
    (``trust_env``) before its first request, as the docker CLI never reads
    those. Its API version is asked of the engine first, as ``auto`` would.
    """
    probe = docker.DockerClient(version=_OLDEST_API, timeout=timeout, **kwargs)
    try:
        probe.api.trust_env = False
        version = str(probe.version(api_version=False)["ApiVersion"])
    finally:
        probe.close()
    client = docker.DockerClient(version=version, timeout=timeout, **kwargs)
    client.api.trust_env = False
    return client


def _unavailable_detail(
    endpoint: EngineEndpoint,
    exc: BaseException,
    from_docker_host: bool = False,
    why: str | None = None,
) -> str:
    """ "does not answer (why); fix", the likeliest fix: a set ``DOCKER_HOST`` comes first.

    ``why`` is the transport's own account (what ssh said), better than the SDK's."""
    reason = why or _short_reason(exc)
    if from_docker_host:
        fix = (
            f"the address comes from DOCKER_HOST: correct it, start the engine it names, "
            f"or unset DOCKER_HOST to use the local engine ({DEFAULT_ENGINE_URL})"
        )
    elif endpoint.is_local:
        fix = FIX_LOCAL_ENGINE
    elif endpoint.scheme == "ssh":
        host = endpoint.url.split("://", 1)[1]
        fix = (
            f"check that `ssh {host} docker version` works without a prompt "
            "(user, key or agent, known_hosts) and that docker runs there"
        )
    elif _tls_asked(os.environ):
        fix = (
            "check the address and port and the TLS settings: DOCKER_TLS_VERIFY=1 and "
            "DOCKER_CERT_PATH, a directory with the engine's ca.pem and our cert.pem and key.pem"
        )
    else:
        fix = "check that the engine at that address runs and is reachable"
    return f"does not answer ({reason}); {fix}"


def _short_reason(exc: BaseException) -> str:
    """The SDK's error in a few words: the system's own error when it carries one."""
    text = str(exc).strip()
    tls = re.search(r"(certificate verify failed|SSL: [A-Z_]+\][^(']*|tlsv1 alert [a-z ]+)", text)
    if tls:
        detail = re.search(r"certificate verify failed: ([^(']+)", text)
        return "TLS: " + (
            f"certificate verify failed: {detail.group(1).strip()}"
            if detail
            else tls.group(1).strip()
        )
    errno = re.search(r"\[Errno (\d+)\] ([^'\")\]]+)", text)
    if errno:
        return f"{errno.group(2).strip()} (errno {errno.group(1)})"
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _check_tls_files(environ: Mapping[str, str]) -> None:
    """With TLS asked for, the files the docker CLI would read must be there: say which lack."""
    if not _tls_asked(environ):
        return
    directory = environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
    missing = [name for name in TLS_FILES if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        lacks = ", ".join(missing)
        raise ValueError(f"TLS is on, but {directory} (DOCKER_CERT_PATH) lacks {lacks}")


#: The files of a TLS client, as the docker CLI names them in DOCKER_CERT_PATH.
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


def _tls_asked(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for TLS to tcp:// engines, as the docker CLI reads it."""
    return bool(environ.get("DOCKER_TLS_VERIFY") or environ.get("DOCKER_CERT_PATH"))


#: What gVisor needs to be a runtime of the engine (the doctor says it when missing).
GVISOR_FIX = (
    "apt-get install runsc, then register it with the engine: dockerd --add-runtime "
    "runsc=/usr/bin/runsc, or a 'runtimes' entry in /etc/docker/daemon.json "
    '(runtimeArgs ["--platform=ptrace"] where there is no KVM), and restart dockerd'
)


def engine_facts(base_url: str | None = None) -> tuple[bool, str, list[str]]:
    """One connection: (answers, version line or reason and fix, registered runtimes)."""
    try:
        with connect_engine(base_url, timeout=10) as engine:
            return True, engine.describe(), engine.runtimes()
    except (EngineUnavailableError, ValueError) as exc:
        return False, str(exc), []


def engine_available(base_url: str | None = None) -> tuple[bool, str]:
    """(True, version line) when the engine answers, else (False, reason and fix)."""
    ok, text, _runtimes = engine_facts(base_url)
    return ok, text


def runtime_works(runtime: str, image: str, base_url: str | None = None) -> tuple[bool, str]:
    """Start one throwaway container of ``image`` under ``runtime``: does it run, and how fast.

    For the doctor: a registered runtime may still fail to start a sandbox
    (gVisor needs ptrace or KVM). No network, removed at once.
    """
    import time

    try:
        with connect_engine(base_url, timeout=10) as engine:
            started = time.monotonic()
            output = engine.client.containers.run(
                image,
                ["python3", "-c", "import platform; print(platform.release())"],
                runtime=runtime,
                network_mode="none",
                remove=True,
                stdout=True,
                stderr=True,
            )
            seconds = time.monotonic() - started
    except Exception as exc:  # any engine or runtime error is the answer
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, first[:300]
    kernel = output.decode("utf-8", "replace").strip()
    return True, f"a container of {image} ran in {seconds:.1f} s; its kernel says {kernel}"
