"""The broker's import path in untrusted mode: the checkout is dropped, a venv inside it refused."""

from __future__ import annotations

from pathlib import Path

from pytest_isolate.untrusted.hooks import classify_sys_path


def test_the_checkout_itself_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "sub").mkdir(parents=True)
    entries = ["", str(root), str(root / "sub" / ".."), "/usr/lib/python3.11"]
    drop, inside = classify_sys_path(entries, root, root / "sub")
    assert drop == ["", str(root), str(root / "sub" / "..")]
    assert inside == []


def test_an_environment_inside_the_checkout_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    site = root / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    drop, inside = classify_sys_path([str(site), "/usr/lib"], root, root)
    assert (drop, inside) == ([], [str(site)])


def test_the_invocation_dir_counts_as_the_checkout(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    tests = root / "tests"
    tests.mkdir(parents=True)
    drop, inside = classify_sys_path([str(tests)], root, tests)
    assert (drop, inside) == ([str(tests)], [])
