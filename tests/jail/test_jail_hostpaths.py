"""Which host directories the jail exposes for the system and for the running Python."""

from __future__ import annotations

import os
import sys

import pytest

from pytest_isolate.jail import default_system_dirs, python_dirs
from pytest_isolate.jail.hostpaths import collapse_nested, pth_path_lines, python_dir_candidates


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ([], ()),
        (["/a/b", "/a"], ("/a",)),
        (["/a", "/ab"], ("/a", "/ab")),  # a sibling with a common prefix is not nested
        (["/x/", "/x", "/x/./y"], ("/x",)),
        (
            ["/r/.pyenv/versions/3.11.7", "/r/.pyenv/versions/3.11.7/lib/site"],
            ("/r/.pyenv/versions/3.11.7",),
        ),
    ],
)
def test_collapse_nested(paths: list[str], expected: tuple[str, ...]) -> None:
    assert collapse_nested(paths) == expected


@pytest.mark.parametrize(
    ("added", "expected_extra"),
    [
        (["/work/other/src"], ("/work/other/src",)),
        (["/root"], ()),  # a home directory: far more than Python
        (["/"], ()),
        (["/home"], ()),  # contains home directories
        (["/home/ann/proj/src"], ("/home/ann/proj/src",)),  # only that directory
        (["relative/dir"], ()),
    ],
)
def test_directories_added_by_pth_files_unless_too_broad(
    added: list[str], expected_extra: tuple[str, ...]
) -> None:
    chosen = python_dir_candidates(
        ["/root/.pyenv/versions/3.11.7"],
        ["/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages"],
        added,
        ["/", "/root", "/home/ann", "/home"],
    )
    assert chosen == collapse_nested(["/root/.pyenv/versions/3.11.7", *expected_extra])


def test_pth_lines_that_are_paths() -> None:
    text = "# comment\n/abs/dir\nrel\nimport os; os.environ\n\n"
    assert pth_path_lines("/site", text) == ("/abs/dir", "/site/rel")


def test_the_running_interpreter_is_exposed_alone_not_its_home() -> None:
    dirs = python_dirs()
    assert os.path.realpath(sys.prefix) in dirs or any(
        os.path.realpath(sys.prefix).startswith(d + "/") for d in dirs
    )
    assert "/root" not in dirs and "/" not in dirs and os.path.expanduser("~") not in dirs
    assert all(os.path.isabs(d) and os.path.realpath(d) == d for d in dirs)


def test_system_dirs_are_those_that_exist() -> None:
    found = default_system_dirs()
    assert "/usr" in found and "/etc/ld.so.cache" in found and "/etc/passwd" in found
    assert "/etc/shadow" not in found and "/etc/hostname" not in found
    assert all(os.path.lexists(p) for p in found)
