"""``pytest --isolate-selftest``: try to escape from every backend here, and show what held.

The battery (``target.escape_probes``) runs as an ordinary test project, one
item per probe and backend (``--isolate-matrix``), in a pytest of its own, so
each probe meets exactly the target a user's test would meet: the same
restriction steps, the same channel. The host side sets the bait first: a
secret file outside the project, a secret in the broker's environment, a
listening socket on every address of the host.

``CLAIMS`` is what the documentation promises for each probe and backend;
the security page's table is generated from it (``claims_markdown``, checked
by the suite), and the run exits non-zero when a probe that a backend claims
to stop got through, or could not be judged.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_isolate.backends.registry import BackendRegistry
from pytest_isolate.target.escape_probes import PROBES

BACKENDS = ("process", "seccomp", "chroot", "container", "vm")
STOPPED = "stopped"
NOT_CLAIMED = "not claimed"

_S, _N = STOPPED, NOT_CLAIMED
#: probe -> what each backend (in ``BACKENDS`` order) claims. A "not claimed"
#: cell may hold here anyway (the table shows it); a "stopped" one must.
CLAIMS: dict[str, tuple[str, str, str, str, str]] = {
    "read a host secret file": (_N, _N, _S, _S, _S),
    "read the broker's environment": (_N, _S, _S, _S, _S),
    "open the Docker socket": (_N, _S, _S, _S, _S),
    "write /proc/sys": (_N, _S, _S, _S, _S),
    "ptrace the broker": (_N, _S, _S, _S, _S),
    "mount a file system": (_N, _S, _S, _S, _S),
    "unshare namespaces": (_N, _S, _S, _S, _N),
    "keyctl": (_N, _S, _S, _S, _N),
    "bpf": (_N, _S, _S, _S, _N),
    "perf_event_open": (_N, _S, _S, _S, _N),
    "userfaultfd": (_N, _S, _S, _S, _N),
    "io_uring_setup": (_N, _S, _S, _S, _N),
    "TIOCSTI (both argument widths)": (_N, _S, _S, _S, _S),
    "connect to loopback": (_N, _S, _S, _S, _S),
    "connect to the host's addresses": (_N, _S, _S, _S, _S),
    "reach 169.254.169.254": (_N, _S, _S, _S, _S),
    "hold or raise a capability": (_N, _S, _S, _S, _S),
    "set the host name": (_N, _S, _S, _S, _S),
    "write the project directory": (_N, _N, _S, _S, _S),
}
#: Why a backend does not claim what it might be expected to.
CLAIM_NOTES = {
    "process": "a fork of the broker, with its user and its view of the machine: it keeps "
    "the broker's memory and outcome safe from the test, not the machine",
    "debugging": "under --pdb or --trace, process, seccomp and chroot targets hold the user's "
    "terminal (the debugger needs it); their filters still stop TIOCSTI",
    "seccomp": "the host's files are read as the unprivileged user the target drops to: "
    "what that user may read or write (a world-readable file, a world-writable directory), "
    "the test may too",
    "vm": "the guest runs its own kernel: namespaces, keyrings, BPF, perf events, userfaultfd "
    "and io_uring inside it reach that kernel only, never the host's",
}

#: The suite's own tests of each probe's claims, by their reference on the security page.
SEE_ALSO = {
    "read a host secret file": "[J1] [J2] [J5] [J7] [CB7] [VB2] [V1]",
    "read the broker's environment": "[SB4] [A3] [CB6] [V6]",
    "open the Docker socket": "[SB1] [S2] [J10] [CB6]",
    "write /proc/sys": "[SB2] [S3] [J12] [K2]",
    "ptrace the broker": "[SB3] [S4] [J6]",
    "mount a file system": "[SB2] [S3] [J12] [CS1] [VS1]",
    "unshare namespaces": "[SB2] [S3] [J12]",
    "keyctl": "[SB2] [S3]",
    "bpf": "[SB2] [S3]",
    "perf_event_open": "[SB2] [S3]",
    "userfaultfd": "[SB2] [S3]",
    "io_uring_setup": "[SB2] [S3]",
    "TIOCSTI (both argument widths)": "[SB2] [S3]",
    "connect to loopback": "[SB1] [S1] [J11] [K1] [CB5] [VB2] [V5]",
    "connect to the host's addresses": "[SB1] [J11] [K1] [CB5] [V5]",
    "reach 169.254.169.254": "[SB1] [J11] [K1] [V5]",
    "hold or raise a capability": "[J13] [K3] [CB6]",
    "set the host name": "",
    "write the project directory": "[J2] [J3] [K2] [CB7] [VB2] [V2] [V3]",
}

SECRET_VARIABLE = "PYTEST_ISOLATE_SELFTEST_SECRET"
#: An item's id: ``test_probe[seccomp-p03]``, or ``test_probe[p03]`` when one backend runs.
_ITEM = re.compile(r"\[(?:(?P<label>.+)-)?p(?P<index>\d+)\]$")


@dataclass(frozen=True)
class Verdict:
    """What one probe met in one backend."""

    held: bool | None  # None: it could not be judged (the probe broke, the target failed)
    why: str


def _host_addresses() -> list[str]:
    """The host's own IPv4 addresses but loopback: where a target must not connect."""
    ip = shutil.which("ip")
    if ip is None:
        return []
    result = subprocess.run(
        [ip, "-o", "-4", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=False,
    )
    return re.findall(r"\binet (\d+\.\d+\.\d+\.\d+)/", result.stdout)


def _docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host[len("unix://") :] if host.startswith("unix://") else "/var/run/docker.sock"


TEST_MODULE = """\
import json
import pytest
from pytest_isolate.target.escape_probes import PROBES, Escaped

CONTEXT = json.loads({context!r})
NAMES = list(PROBES)


@pytest.mark.parametrize("index", range(len(NAMES)), ids=[f"p{{i:02d}}" for i in range(len(NAMES))])
def test_probe(index, record_property, request):
    context = dict(CONTEXT, broker_pid=int(request.config.getoption("selftest_broker_pid")))
    try:
        why = PROBES[NAMES[index]](context)
    except Escaped as exc:
        record_property("selftest", "escaped: " + str(exc))
        pytest.fail("ESCAPED: " + str(exc), pytrace=False)
    record_property("selftest", "held: " + why)
"""

CONFTEST = """\
import os


def pytest_addoption(parser):
    # Read in the broker: a spawned target is sent the broker's option values.
    parser.addoption("--selftest-broker-pid", default=str(os.getpid()))
"""


def _write_project(project: Path, context: Mapping[str, object]) -> None:
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_selftest.py").write_text(TEST_MODULE.format(context=json.dumps(context)))
    for path in (project.parent, project):
        path.chmod(0o755)  # a container's agent runs as an unprivileged user


def _verdicts(junit: Path, only: str) -> Iterator[tuple[str, str, Verdict]]:
    """(probe, backend, verdict) for each item the run reported (``only``: the one backend)."""
    names = list(PROBES)
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        match = _ITEM.search(case.get("name", ""))
        if match is None or int(match["index"]) >= len(names):
            continue
        backend = match["label"].split(":", 1)[0] if match["label"] else only
        said = next(
            (p.get("value", "") for p in case.iter("property") if p.get("name") == "selftest"),
            None,
        )
        problem = next(iter([*case.iter("failure"), *case.iter("error")]), None)
        message = "" if problem is None else (problem.get("message") or problem.text or "")
        if said is not None and said.startswith("escaped: "):
            verdict = Verdict(False, said[len("escaped: ") :])
        elif said is not None and problem is None:
            verdict = Verdict(True, said[len("held: ") :])
        elif "seccomp" in message.lower():
            verdict = Verdict(True, "stopped by the seccomp filter: " + message[:200])
        else:
            verdict = Verdict(None, message[:300] or "no verdict reported")
        yield names[int(match["index"])], backend, verdict


def run_battery(
    backends: list[str], timeout: float = 900.0, container_runtime: str | None = None
) -> dict[tuple[str, str], Verdict]:
    """Run every probe in each of ``backends``; the verdicts by (probe, backend).

    ``container_runtime`` runs the container column under that runtime (``runsc``).
    """
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="pytest-isolate-selftest-") as tmp:
        root = Path(tmp)
        hidden = root / "secret"
        hidden.mkdir(mode=0o700)
        secret_file = hidden / "secret.txt"
        secret_file.write_text(secret)
        secret_file.chmod(0o600)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("0.0.0.0", 0))
            listener.listen(128)
            project = root / "project"
            context = {
                "secret": secret,
                "secret_file": str(secret_file),
                "port": listener.getsockname()[1],
                "host_addresses": _host_addresses(),
                "docker_socket": _docker_socket(),
                "project": str(project),
            }
            _write_project(project, context)
            junit = root / "junit.xml"
            environ = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
            environ.update({SECRET_VARIABLE: secret, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "pytest_isolate.plugin",
                    "-p",
                    "no:cacheprovider",
                    "-q",
                    "--isolate-timeout=120",
                    *(
                        [f"--isolate-container-runtime={container_runtime}"]
                        if container_runtime
                        else []
                    ),
                    f"--isolate-matrix={','.join(backends)}",
                    f"--junitxml={junit}",
                    str(project),
                ],
                cwd=project,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        if not junit.exists():
            return {}
        return {
            (probe, backend): verdict for probe, backend, verdict in _verdicts(junit, backends[0])
        }


def claim(probe: str, backend: str) -> str:
    return CLAIMS[probe][BACKENDS.index(backend)]


def _cell(verdict: Verdict | None, claimed: str) -> str:
    if verdict is None:
        return "-"
    if verdict.held is None:
        return "error" + ("!" if claimed == STOPPED else "")
    if verdict.held:
        return "held"
    return "ESCAPED!" if claimed == STOPPED else "escaped"


def render(
    verdicts: Mapping[tuple[str, str], Verdict],
    unavailable: Mapping[str, str],
    verbose: bool = False,
) -> list[str]:
    """The table (probe by backend), then a line for each failure of a claim."""
    width = max(len(probe) for probe in PROBES)
    lines = [
        "pytest-isolate self-test: escape attempts from inside each backend's target",
        " " * width + "  " + "  ".join(f"{b:<9}" for b in BACKENDS),
    ]
    for probe in PROBES:
        cells = [_cell(verdicts.get((probe, b)), claim(probe, b)) for b in BACKENDS]
        lines.append(f"{probe:<{width}}  " + "  ".join(f"{c:<9}" for c in cells))
    lines.append(
        "held: the attempt failed; escaped: it got through where nothing is claimed; "
        "ESCAPED!: it got through where the docs say it is stopped; error!: it could not be judged"
    )
    for backend, reason in unavailable.items():
        lines.append(f"{backend}: not available here ({reason}); not tried")
    for (probe, backend), verdict in sorted(verdicts.items()):
        failed = verdict.held is not True and claim(probe, backend) == STOPPED
        if failed or verbose:
            lines.append(f"  {backend} / {probe}: {verdict.why}")
    return lines


def failures(verdicts: Mapping[tuple[str, str], Verdict], backends: list[str]) -> list[str]:
    """Each claimed stop that did not hold here (escaped, unjudged or never reported)."""
    found = []
    for probe in PROBES:
        for backend in backends:
            if claim(probe, backend) != STOPPED:
                continue
            verdict = verdicts.get((probe, backend))
            if verdict is None or verdict.held is not True:
                found.append(f"{backend} / {probe}")
    return found


def claims_markdown() -> str:
    """The security page's table of what each backend claims to stop, from ``CLAIMS``."""
    lines = [
        "| escape attempt | " + " | ".join(BACKENDS) + " | also tested by |",
        "| --- |" + " --- |" * len(BACKENDS) + " --- |",
    ]
    for probe, cells in CLAIMS.items():
        lines.append(f"| {probe} | " + " | ".join(cells) + f" | {SEE_ALSO[probe]} |")
    lines.append("")
    lines += [f"- `{backend}`: {note}." for backend, note in CLAIM_NOTES.items()]
    return "\n".join(lines) + "\n"


def print_selftest(
    registry: BackendRegistry, verbose: bool = False, container_runtime: str | None = None
) -> int:
    """Run the battery on every backend available here, print the table; 1 if a claim failed."""
    unavailable: dict[str, str] = {}
    backends = []
    for backend in BACKENDS:
        availability = registry.availability(backend)
        if availability:
            backends.append(backend)
        else:
            unavailable[backend] = availability.reason
    verdicts = run_battery(backends, container_runtime=container_runtime) if backends else {}
    if container_runtime and "container" in backends:
        print(f"container targets run under the runtime {container_runtime!r}")
    for line in render(verdicts, unavailable, verbose):
        print(line)
    failed = failures(verdicts, backends)
    if failed:
        print(
            f"pytest-isolate self-test: {len(failed)} claimed stop(s) did not hold: "
            + "; ".join(failed)
        )
        return 1
    print(f"pytest-isolate self-test: every claimed stop held on {', '.join(backends) or 'none'}")
    return 0
