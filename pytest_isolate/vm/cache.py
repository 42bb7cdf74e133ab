"""Where built artefacts (decompressed kernels, initramfs, KVM verdicts) live.

Everything here is rebuilt on demand, so the directory can be deleted at any
time. Files are written to a temporary name and renamed into place, so that
two brokers (pytest-xdist workers) building the same artefact never see a
half-written file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """``$PYTEST_ISOLATE_CACHE`` or ``~/.cache/pytest-isolate``, created 0700."""
    root = os.environ.get("PYTEST_ISOLATE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "pytest-isolate"
    )
    path = Path(root) / "vm"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def file_key(path: str | os.PathLike[str]) -> str:
    """A short key that changes when the file is replaced: path, size and mtime.

    Hashing a 60 MB kernel on every run would cost more than the cache saves.
    """
    st = os.stat(path)
    raw = f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so readers see either nothing or all of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
