"""``pytest --isolate-selftest`` on this machine: every backend, every probe, every claim held.

The battery runs as a user runs it, in a pytest of its own, against real
targets of every backend. Then the same battery with a claim that the
``process`` backend cannot keep (it does not scrub the environment) must
report that escape and fail: a battery that could not see an escape would
prove nothing. Last, the security page's table is the battery's own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_isolate import selftest
from pytest_isolate.target.escape_probes import PROBES

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["runc", "runsc"])
def battery(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    """The battery as a user runs it; its container column under runc, then gVisor's runsc."""
    runtime = [f"--isolate-container-runtime={request.param}"] if request.param == "runsc" else []
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "--isolate-selftest", "-v", *runtime],
        cwd=tmp_path_factory.mktemp("selftest"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_every_claimed_stop_holds_on_every_backend(
    battery: subprocess.CompletedProcess[str],
) -> None:
    assert battery.returncode == 0, battery.stdout[-5000:] + battery.stderr[-2000:]
    assert battery.stdout.rstrip().endswith(
        "every claimed stop held on process, seccomp, chroot, container, vm"
    ), battery.stdout[-3000:]
    assert "not available here" not in battery.stdout  # nothing may skip on this machine


@pytest.mark.parametrize("probe", list(PROBES))
def test_each_probe_has_a_row_with_a_verdict_in_every_column(
    battery: subprocess.CompletedProcess[str], probe: str
) -> None:
    row = next(line for line in battery.stdout.splitlines() if line.startswith(probe + "  "))
    cells = row[len(probe) :].split()
    assert len(cells) == len(selftest.BACKENDS), row
    assert set(cells) <= {"held", "escaped"}, row  # no error, no missing verdict


def test_the_process_backend_is_seen_to_leak_what_it_does_not_claim(
    battery: subprocess.CompletedProcess[str],
) -> None:
    """A fork keeps the broker's environment and user: the battery must see that happen."""
    rows = {line.split("  ")[0]: line for line in battery.stdout.splitlines()}
    for probe in ("read the broker's environment", "read a host secret file"):
        assert rows[probe][len(probe) :].split()[0] == "escaped", rows[probe]


def test_a_claim_that_does_not_hold_fails_the_battery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Claim that a fork hides the broker's environment: the real probe gets through."""
    probe = "read the broker's environment"
    claims = dict(selftest.CLAIMS)
    claims[probe] = (selftest.STOPPED, *claims[probe][1:])  # type: ignore[assignment]
    monkeypatch.setattr(selftest, "CLAIMS", claims)
    verdicts = selftest.run_battery(["process"])
    assert verdicts[probe, "process"].held is False
    assert "secret variable" in verdicts[probe, "process"].why
    assert selftest.failures(verdicts, ["process"]) == [f"process / {probe}"]
    table = "\n".join(selftest.render(verdicts, {}))
    assert "ESCAPED!" in table


def test_the_security_page_shows_the_batterys_claims() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "security-table"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
