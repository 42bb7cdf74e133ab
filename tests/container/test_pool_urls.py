"""What ``--isolate-engines`` accepts, and the ssh command lines an ``ssh://`` engine becomes."""

from __future__ import annotations

import pytest

from pytest_isolate.container.engine_pool import split_engine_urls
from pytest_isolate.container.ssh_dial import master_command, ssh_command, ssh_destination


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        (None, []),
        ("", []),
        ("unix:///var/run/docker.sock", ["unix:///var/run/docker.sock"]),
        (
            "ssh://ci@build-1, tcp://build-2:2376 ,",
            ["ssh://ci@build-1", "tcp://build-2:2376"],
        ),
        ("ssh://a\nssh://b", ["ssh://a", "ssh://b"]),  # an ini value over several lines
        (["ssh://a", "ssh://b"], ["ssh://a", "ssh://b"]),
    ],
)
def test_engine_urls_are_split_and_checked(value: object, urls: list[str]) -> None:
    assert split_engine_urls(value) == urls  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("ftp://build-1", "unsupported scheme 'ftp'"),
        ("build-1", "has no scheme"),
        ("ssh://a,ssh://a", "names an engine twice"),
    ],
)
def test_a_bad_engine_url_says_what_is_wrong(value: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        split_engine_urls(value)


@pytest.mark.parametrize(
    ("url", "destination"),
    [
        ("ssh://build-1", ["--", "build-1"]),
        ("ssh://ci@build-1", ["-l", "ci", "--", "build-1"]),
        ("ssh://ci@build-1:2222", ["-l", "ci", "-p", "2222", "--", "build-1"]),
    ],
)
def test_an_ssh_url_becomes_the_ssh_programs_arguments(url: str, destination: list[str]) -> None:
    assert ssh_destination(url) == destination
    dial = ssh_command(url, "/run/x/master")
    assert dial[0] == "ssh" and "BatchMode=yes" in dial and "ControlMaster=no" in dial
    assert dial[-len(destination) - 3 :] == [*destination, "docker", "system", "dial-stdio"]
    master = master_command(url, "/run/x/master")
    assert master[:4] == ["ssh", "-o", "BatchMode=yes", "-M"] and "-N" in master
    assert "ControlPath=/run/x/master" in master and "ServerAliveInterval=5" in master
    assert master[-len(destination) :] == destination


def test_an_ssh_url_without_a_host_is_refused() -> None:
    with pytest.raises(ValueError, match="is not an ssh://"):
        ssh_destination("ssh://")
