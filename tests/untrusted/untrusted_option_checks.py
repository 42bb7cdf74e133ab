"""Option checks that must hold in every untrusted target, written once.

Each target's module imports them by name (``from untrusted_option_checks
import test_x as test_x``) and pytest collects them there, under that
module's test ids and with that module's ``project`` fixture: the same check
runs against a container in test_untrusted_options and against a chroot jail
in test_untrusted_chroot_options. ``conftest.py`` has their asserts rewritten.
"""

from __future__ import annotations

from untrusted_benign import BenignProject


def test_m_selects_by_mark(project: BenignProject) -> None:
    result = project.run("-q", "-m", "slow")
    assert f"1 passed, {project.tests - 1} deselected" in result.output


def test_a_mark_can_tighten_the_timeout(project: BenignProject) -> None:
    result = project.run("-q", "-k", "tight", "--isolate-timeout=60")
    assert "timed out after 1 s" in result.output


def test_only_env_named_on_the_command_line_reaches_the_tests(project: BenignProject) -> None:
    result = project.run("-rA", "-k", "test_env", "--isolate-untrusted-env=DB_URL")
    assert "DB_URL=postgres://ci" in result.output
    assert "BROKER_ONLY=<unset>" in result.output
