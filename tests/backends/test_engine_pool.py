"""``--isolate-engines``: container tests spread over real engines reached over ssh.

The engines are real dockerd instances, each in a network namespace of its
own with an sshd in front (``scripts/engine-hosts``); the broker reaches
them as ``ssh://root@10.231.N.2`` through the system's ssh program. What ran
where is read from each engine's own event log, not from our summary alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_project import BOOKWORM, CONFTEST, run_project
from engine_hosts import EngineHosts, start_engine_hosts, stop_engine_hosts
from project_runner import run_pytest, write_project

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="engine hosts need root")

FRESH_TESTS = """
import platform
import pytest
from pytest_isolate import isolate

@pytest.mark.parametrize("n", range(6))
@isolate("container", fresh=True)
def test_fresh(n):
    assert platform.system() == "Linux"
"""

#: The broker stops the engine that runs ``test_victim`` once it runs there.
STOPPER = """
import os, signal, threading, time

def _stop_the_victims_engine():
    import docker  # the broker's: a container has none

    run, count = os.environ["ENGINE_HOSTS_RUN"], int(os.environ["ENGINE_HOSTS_COUNT"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for n in range(1, count + 1):
            try:
                client = docker.DockerClient(base_url=f"unix://{run}/e{n}/docker.sock")
            except Exception:
                continue  # stopped: by us, in a parametrized run before
            try:
                running = client.api.containers(filters={"label": "org.pytest-isolate.run"})
            except Exception:
                running = []
            finally:
                client.close()
            if running:
                time.sleep(1.5)  # the victim is asleep in it now
                with open(f"{run}/e{n}/dockerd.pid") as fh:
                    os.kill(int(fh.read()), signal.SIGTERM)
                with open(os.environ["STOPPED_FILE"], "w") as fh:
                    fh.write(str(n))
                return
        time.sleep(0.2)

def pytest_runtest_logstart(nodeid, location):
    if nodeid.endswith("::test_victim") and os.environ.get("STOPPED_FILE"):
        threading.Thread(target=_stop_the_victims_engine, daemon=True).start()
"""

VICTIM_TESTS = """
import time
import pytest
from pytest_isolate import isolate

@isolate("container", fresh=True)
def test_a_before():
    pass

@isolate("container", fresh=True)
def test_victim():
    time.sleep(10)

@pytest.mark.parametrize("n", range(4))
@isolate("container", fresh=True)
def test_after(n):
    pass
"""


@pytest.fixture(scope="module")
def hosts() -> Iterator[EngineHosts]:
    started = start_engine_hosts(3)
    try:
        yield started
    finally:
        stop_engine_hosts()


@pytest.fixture(autouse=True)
def nothing_left_on_any_engine(hosts: EngineHosts) -> Iterator[None]:
    yield
    hosts.start()  # a test may have stopped one: it must be clean when it comes back
    deadline = time.monotonic() + 30
    left = {n: hosts.ours(n) for n in range(1, hosts.count + 1)}
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        left = {n: hosts.ours(n) for n in range(1, hosts.count + 1)}
    assert not any(left.values()), f"containers left on the engines: {left}"


def pool_option(hosts: EngineHosts, *extra: str) -> str:
    return "--isolate-engines=" + ",".join([*hosts.urls, *extra])


def test_tests_spread_over_every_engine_and_a_missing_image_is_loaded(
    hosts: EngineHosts, tmp_path: Path
) -> None:
    with hosts.client(3) as third:  # host 3 lacks the image: the broker loads it
        for image in third.images.list(name=BOOKWORM):
            third.images.remove(image.id, force=True)
        local_id = __import__("docker").from_env().images.get(BOOKWORM).id
    since = time.time()
    run = run_project(
        tmp_path / "p", {"test_fresh.py": FRESH_TESTS}, pool_option(hosts), env=hosts.env
    )
    assert run.ret == 0, run.output
    assert [hosts.starts_since(n, since) for n in (1, 2, 3)] == [2, 2, 2], run.output
    for url in hosts.urls:
        assert f"{url}: 2 containers started" in run.output
    assert f"loading image {BOOKWORM} (" in run.output
    assert f"into {hosts.url(3)}" in run.output
    with hosts.client(3) as third:
        assert third.images.get(BOOKWORM).id == local_id  # by digest, as the local one


def test_xdist_workers_spread_over_the_pool(hosts: EngineHosts, tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", {"test_fresh.py": FRESH_TESTS})
    project.chmod(0o755)
    since = time.time()
    run = run_pytest(project, pool_option(hosts), "-n", "2", env={"CI": "1", **hosts.env})
    assert run.ret == 0, run.output
    starts = [hosts.starts_since(n, since) for n in (1, 2, 3)]
    assert sum(starts) == 6 and sum(1 for n in starts if n) >= 2, (starts, run.output)
    for url, started in zip(hosts.urls, starts):  # the controller adds up its workers' counts
        plural = "" if started == 1 else "s"
        assert f"{url}: {started} container{plural} started" in run.output, run.output


@pytest.mark.parametrize("retry", [False, True], ids=["fails", "retried"])
def test_an_engine_stopped_mid_test_fails_only_that_test(
    hosts: EngineHosts, tmp_path: Path, retry: bool
) -> None:
    stopped_file = tmp_path / "stopped"
    env = {
        **hosts.env,
        "ENGINE_HOSTS_RUN": "/run/pytest-isolate-engine-hosts",
        "ENGINE_HOSTS_COUNT": str(hosts.count),
        "STOPPED_FILE": str(stopped_file),
    }
    # Without starting ahead: the stopper must find the victim's container alone, asleep.
    args = [pool_option(hosts), "--isolate-no-prefork"]
    args += ["--isolate-engine-retry"] if retry else []
    run = run_project(
        tmp_path / "p",
        {"conftest.py": CONFTEST + STOPPER, "test_victim.py": VICTIM_TESTS},
        *args,
        env=env,
    )
    stopped = hosts.url(int(stopped_file.read_text()))
    assert run.outcome("test_a_before") == "PASSED", run.output
    for n in range(4):
        assert run.outcome(f"test_after[{n}]") == "PASSED", run.output
    assert f"{stopped}: " in run.output and "lost during the run" in run.output
    if retry:
        assert run.ret == 0, run.output
        assert run.outcome("test_victim") == "PASSED", run.output
        assert f"The first attempt failed: infrastructure failure: the Docker engine {stopped}" in (
            run.output
        )
        assert "This result is the second attempt's, on another engine" in run.output
        assert "ran again on another engine after theirs was lost: test_victim.py::test_victim" in (
            run.output
        )
    else:
        assert run.ret == 1, run.output
        assert run.outcome("test_victim") == "FAILED", run.output
        assert (
            f"infrastructure failure: the Docker engine {stopped} was lost during this test"
            in run.output
        )


def test_a_killed_broker_leaves_nothing_on_any_engine(hosts: EngineHosts, tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "killed",
        {
            "test_sleeps.py": "import time\nfrom pytest_isolate import isolate\n\n"
            "@isolate('container', fresh=True)\ndef test_sleeps():\n    time.sleep(120)\n"
        },
    )
    project.chmod(0o755)
    broker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-q",
            pool_option(hosts),
        ],
        cwd=project,
        env={**os.environ, **hosts.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            hosts.ours(n) for n in range(1, hosts.count + 1)
        ):
            time.sleep(0.2)
        assert any(hosts.ours(n) for n in range(1, hosts.count + 1)), "no container started"
        time.sleep(1.0)
        os.kill(broker.pid, signal.SIGKILL)
        broker.wait()
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait()
    deadline = time.monotonic() + 15  # its ssh processes end with it (EOF, or the master's
    while time.monotonic() < deadline and ssh_of(broker.pid):  # parent-death signal)
        time.sleep(0.2)
    assert ssh_of(broker.pid) == [], "the killed broker's ssh processes outlived it"
    # The next run on the pool reaps whatever the lifeline did not end.
    after = run_project(
        tmp_path / "next",
        {"test_one.py": FRESH_TESTS},
        pool_option(hosts),
        "-k",
        "0",
        env=hosts.env,
    )
    assert after.ret == 0, after.output
    relays = list(Path(tempfile.gettempdir()).glob(f"pytest-isolate-{broker.pid}-ssh-*"))
    assert relays == [], "the killed broker's ssh relay directories are still there"


def test_engines_that_cannot_be_reached_are_named_with_their_fix(
    hosts: EngineHosts, tmp_path: Path
) -> None:
    certs = tmp_path / "no-certs"
    bad = [
        "tcp://10.231.1.2:2375",  # an address of our namespace where nothing listens
        "ssh://nobody@10.231.2.2",  # a user the host does not let in
    ]
    run = run_project(
        tmp_path / "p",
        {"test_fresh.py": FRESH_TESTS},
        "--isolate-engines=" + ",".join([hosts.url(1), *bad]),
        "-k",
        "0",
        env={**hosts.env, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)},
    )
    assert run.ret == 0, run.output  # the test ran on the engine that answers
    assert "pytest-isolate: engine pool, 1 of 3 engines:" in run.output
    assert (
        f"tcp://10.231.1.2:2375: left out, does not answer (TLS is on, but {certs} "
        "(DOCKER_CERT_PATH) lacks ca.pem, cert.pem, key.pem)"
    ) in run.output
    assert "ssh://nobody@10.231.2.2: left out, does not answer (" in run.output
    assert "Permission denied" in run.output
    assert "check that `ssh nobody@10.231.2.2 docker version` works" in run.output

    refused = run_project(
        tmp_path / "q",
        {"test_fresh.py": FRESH_TESTS},
        "--isolate-engines=tcp://10.231.1.2:2375",
        "-k",
        "0",
        env=hosts.env,
    )
    assert refused.ret == 1
    assert "no engine of --isolate-engines can take a container" in refused.output
    assert "tcp://10.231.1.2:2375: does not answer (Connection refused (errno 111))" in (
        refused.output
    )

    malformed = run_project(
        tmp_path / "r", {"test_fresh.py": FRESH_TESTS}, "--isolate-engines=ftp://10.231.1.2"
    )
    assert malformed.ret == 4
    assert "unsupported scheme 'ftp'" in malformed.output


def ssh_of(broker_pid: int) -> list[str]:
    """Command lines of the ssh processes that relay for the broker ``broker_pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            line = " ".join(word.decode("utf-8", "replace") for word in words)
            if words[0] == b"ssh" and f"pytest-isolate-{broker_pid}-ssh-" in line:
                found.append(line)
    return found


def test_a_tls_engine_takes_part_and_a_ca_that_did_not_sign_it_is_named(
    hosts: EngineHosts, tmp_path: Path
) -> None:
    tls = "tcp://10.231.2.2:2376"
    env = {**hosts.env, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": hosts.certs}
    run = run_project(
        tmp_path / "p",
        {"test_fresh.py": FRESH_TESTS},
        f"--isolate-engines={tls}",
        "-k",
        "0",
        env=env,
    )
    assert run.ret == 0, run.output
    assert f"{tls}: 2 CPUs" in run.output and f"{tls}: 1 container started" in run.output

    strange = tmp_path / "strange-ca"  # our client's files, but another CA to check the engine
    strange.mkdir()
    for name in ("cert.pem", "key.pem"):
        (strange / name).write_bytes(Path(hosts.certs, name).read_bytes())
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=strange",
            "-keyout",
            str(strange / "ca-key.pem"),
            "-out",
            str(strange / "ca.pem"),
        ],
        check=True,
        capture_output=True,
    )
    refused = run_project(
        tmp_path / "q",
        {"test_fresh.py": FRESH_TESTS},
        f"--isolate-engines={tls}",
        "-k",
        "0",
        env={**env, "DOCKER_CERT_PATH": str(strange)},
    )
    assert refused.ret == 1, refused.output
    assert f"{tls}: left out, does not answer (TLS: certificate verify failed" in refused.output
    assert "the TLS settings: DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH" in refused.output
