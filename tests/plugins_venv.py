"""A venv with this checkout and the plugins that change every run they are in.

pytest-randomly reseeds and reorders, pytest-benchmark and pytest-html add to
every header and summary: they would change the whole suite's runs, so the
tests that check them use a venv of their own, installed from
``requirements/plugins.txt`` (``OTHER_PLUGINS`` in
``scripts/pinned-environments.sh``) and cached per checkout and pins.
A test that wants one of them alone turns the others off with ``-p no:NAME``.

Found from every test directory, as ``project_runner`` is (``tests/conftest.py``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PINS = REPO / "requirements" / "plugins.txt"
CACHE = Path(os.environ.get("PYTEST_ISOLATE_CACHE", Path.home() / ".cache" / "pytest-isolate"))


def plugins_python() -> Path:
    """The venv's interpreter, made on first use (a lock keeps xdist workers from racing)."""
    import fcntl

    key = hashlib.sha256(f"{REPO}\n{PINS.read_text()}".encode()).hexdigest()[:16]
    venv = CACHE / "venvs" / f"plugins-{key}"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".plugins-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".ready").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pip = [str(python), "-m", "pip", "install", "-q"]
            subprocess.run([*pip, "-r", str(PINS)], check=True)
            subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)
            (venv / ".ready").write_text(key)
    return python
