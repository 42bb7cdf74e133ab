"""Which engine, local or remote, and what a user is told when it is missing."""

from __future__ import annotations

import pytest

from pytest_isolate.container.engine import (
    DEFAULT_ENGINE_URL,
    Engine,
    EngineUnavailableError,
    connect_engine,
    engine_available,
    parse_engine_url,
    resolve_engine_url,
)


@pytest.mark.parametrize(
    ("url", "scheme", "is_local"),
    [
        ("unix:///var/run/docker.sock", "unix", True),
        ("/var/run/docker.sock", "unix", True),
        ("tcp://127.0.0.1:2375", "tcp", False),
        ("tcp://build-host:2376", "tcp", False),
        ("ssh://ci@build-host", "ssh", False),
        ("https://engine.example:2376", "https", False),
    ],
)
def test_only_a_unix_socket_engine_allows_bind_mounts(
    url: str, scheme: str, is_local: bool
) -> None:
    endpoint = parse_engine_url(url)
    assert (endpoint.scheme, endpoint.is_local) == (scheme, is_local)


@pytest.mark.parametrize("url", ["npipe:////./pipe/docker_engine", "fd://3", "localhost:2375"])
def test_unusable_engine_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="pytest-isolate"):
        parse_engine_url(url)


@pytest.mark.parametrize(
    ("base_url", "environ", "resolved"),
    [
        (None, {}, DEFAULT_ENGINE_URL),
        (None, {"DOCKER_HOST": "tcp://h:1"}, "tcp://h:1"),
        ("ssh://x", {"DOCKER_HOST": "tcp://h:1"}, "ssh://x"),
        (None, {"DOCKER_HOST": ""}, DEFAULT_ENGINE_URL),
    ],
)
def test_explicit_url_beats_docker_host_beats_default(
    base_url: str | None, environ: dict[str, str], resolved: str
) -> None:
    assert resolve_engine_url(base_url, environ) == resolved


def test_the_local_engine_is_available_and_named_with_its_version() -> None:
    available, text = engine_available()
    assert available, text
    assert "Docker engine" in text and "API" in text and "local (bind mounts)" in text


def test_an_unreachable_engine_says_so_and_how_to_fix_it() -> None:
    available, text = engine_available("unix:///nonexistent/docker.sock")
    assert not available
    assert "does not answer" in text and "sudo systemctl start docker" in text
    assert "scripts/" not in text  # an installed package has no scripts directory


def test_an_unreachable_docker_host_is_named_as_the_likely_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    available, text = engine_available()
    assert not available
    assert "the address comes from DOCKER_HOST" in text and "unset DOCKER_HOST" in text


def test_docker_host_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    with pytest.raises(EngineUnavailableError, match=r"tcp://127\.0\.0\.1:1"):
        connect_engine(timeout=5)


def test_a_tcp_engine_is_remote_and_works(remote_engine: Engine) -> None:
    assert not remote_engine.is_local
    assert remote_engine.url.startswith("tcp://127.0.0.1:")
    assert remote_engine.version()["ApiVersion"]
