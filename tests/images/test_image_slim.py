"""Slimming a new root removes what Python does not need, and nothing outside it."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_isolate.images.build import slim_root
from pytest_isolate.images.recipe import SLIM_PATTERNS


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_docs_caches_and_locales_go_and_python_stays(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(
        root,
        {
            "usr/share/doc/python3/copyright": b"x" * 100,
            "usr/share/man/man1/python3.1.gz": b"x" * 50,
            "usr/share/locale/de/LC_MESSAGES/apt.mo": b"x" * 10,
            "var/lib/apt/lists/deb.debian.org_Packages": b"x" * 1000,
            "var/cache/apt/pkgcache.bin": b"x" * 500,
            "usr/lib/python3.11/os.py": b"import abc\n",
        },
    )
    freed = slim_root(str(root), SLIM_PATTERNS)
    assert freed == 1660
    assert (root / "usr/lib/python3.11/os.py").exists()
    assert (root / "usr/share/doc").is_dir()
    assert not any((root / "usr/share/doc").iterdir())
    assert not any((root / "var/lib/apt/lists").iterdir())


def test_symlinks_are_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _tree(outside, {"precious.txt": b"keep me"})
    root = tmp_path / "root"
    (root / "usr/share/doc").mkdir(parents=True)
    os.symlink(outside, root / "usr/share/doc/link-to-outside")
    slim_root(str(root), SLIM_PATTERNS)
    assert (outside / "precious.txt").read_bytes() == b"keep me"
    assert not os.path.lexists(root / "usr/share/doc/link-to-outside")
