"""Run a generated test project once in a real pytest subprocess, for module-scoped fixtures.

pytester is function-scoped; hostile suites here cost one pytest start each,
so the project runs once per module and each test asserts one line of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ProjectRun:
    ret: int
    output: str

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()

    def outcome(self, name: str) -> str:
        """The ``-rA`` summary line of test ``name``."""
        for line in self.lines:
            if line.split(" ")[0] in {
                "PASSED",
                "FAILED",
                "ERROR",
                "SKIPPED",
                "XFAIL",
                "XPASS",
            } and (line.split(" ")[1].endswith(f"::{name}")):
                return line
        raise AssertionError(f"no outcome line for {name}:\n" + "\n".join(self.lines[-60:]))


def run_project(
    directory: Path,
    source: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> ProjectRun:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test_hostile.py").write_text(source)
    (directory / "pytest.ini").write_text("[pytest]\n")
    full_env = {**os.environ, "COLUMNS": "400", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        cwd=directory,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return ProjectRun(proc.returncode, proc.stdout)
