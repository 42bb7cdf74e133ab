"""Between tests the shared jail's own /tmp and /dev/shm are emptied, never a host directory.

A user may give the jail a host directory at /tmp (``binds={D: "/tmp"},
writable=["/tmp"]``): that /tmp is the user's, and emptying it after each test
would delete the user's files (it once did: a session lost the machine's
whole /tmp to ``writable=["/tmp"]``). The host directory here is a private
one, bound at the jail's /tmp, never the host's own /tmp.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from project_runner import run_pytest, write_project

from pytest_isolate.jail.jail_config import JailConfig
from pytest_isolate.jail.shared import scratch_areas


@pytest.mark.parametrize(
    ("config", "emptied"),
    [
        (JailConfig("/p"), ("/tmp", "/dev/shm")),
        (JailConfig("/p", writable=("/tmp",)), ("/dev/shm",)),
        (JailConfig("/p", writable=("/tmp/out",)), ("/tmp", "/dev/shm")),
        (JailConfig("/p", binds=(("/host/d", "/dev/shm"),)), ("/tmp",)),
        (JailConfig("/p", writable=("/",)), ()),
        (JailConfig("/tmp/project"), ("/tmp", "/dev/shm")),
        (JailConfig("/p", extra_readonly=("/dev",)), ("/tmp",)),
    ],
)
def test_only_the_jails_own_scratch_areas_are_emptied(
    config: JailConfig, emptied: tuple[str, ...]
) -> None:
    assert scratch_areas(config) == emptied


def test_a_host_directory_bound_at_tmp_keeps_its_files_and_what_tests_wrote(
    tmp_path: Path,
) -> None:
    host = Path(tempfile.mkdtemp(prefix="isolate-bound-tmp-", dir="/var/tmp"))
    try:
        host.chmod(0o1777)  # the jailed test writes as nobody
        (host / "users-own-file").write_text("keep me")
        mark = f'binds={{{str(host)!r}: "/tmp"}}, writable=["/tmp"]'
        project = write_project(
            tmp_path / "project",
            {
                "test_bound.py": f"""
                    import os
                    from pytest_isolate import isolate

                    @isolate("chroot", {mark})
                    def test_1_writes_into_the_bound_tmp():
                        assert os.path.exists("/tmp/users-own-file")
                        with open("/tmp/written-by-a-test", "w") as out:
                            out.write("x")

                    @isolate("chroot", {mark})
                    def test_2_finds_it_there_in_the_next_test():
                        assert os.path.exists("/tmp/written-by-a-test")
                """
            },
        )
        run = run_pytest(project, xdist=False)
        assert "2 passed" in run.output, run.output[-3000:]
        assert (host / "users-own-file").read_text() == "keep me"
        assert (host / "written-by-a-test").exists()
    finally:
        shutil.rmtree(host, ignore_errors=True)
