"""Which interpreter directories the untrusted chroot jail shows (pure)."""

from __future__ import annotations

import pytest

from pytest_isolate.untrusted.chroot_target import jail_config, without_checkout

PYENV = "/root/.pyenv/versions/3.11.7"


@pytest.mark.parametrize(
    ("dirs", "package", "kept"),
    [
        # editable install: the checkout is dropped, the prefix stays
        ((PYENV, "/work/main"), "/work/main/pytest_isolate", (PYENV,)),
        # installed normally: its site-packages lies in the prefix and stays
        ((PYENV,), f"{PYENV}/lib/python3.11/site-packages/pytest_isolate", (PYENV,)),
        # a venv inside the prefix list, other editable dependencies stay
        (("/venv", "/src/dep"), "/work/main/pytest_isolate", ("/src/dep", "/venv")),
    ],
)
def test_an_editable_checkout_of_the_plugin_is_not_shown(
    dirs: tuple[str, ...], package: str, kept: tuple[str, ...]
) -> None:
    assert without_checkout(dirs, package, (PYENV, "/venv")) == kept


def test_a_venv_made_inside_the_checkout_is_still_shown_without_the_checkout() -> None:
    # python_dirs() folds /work/main/.venv into the editable checkout's entry
    dirs = (PYENV, "/work/main")
    prefixes = (PYENV, "/work/main/.venv")
    shown = without_checkout(dirs, "/work/main/pytest_isolate", prefixes)
    assert shown == (PYENV, "/work/main/.venv")


def test_the_jail_adds_only_the_project_and_nothing_writable() -> None:
    config = jail_config("/var/tmp/project", network=False)
    assert (config.rootfs, config.binds, config.writable, config.network) == (
        "/",
        (),
        (),
        False,
    )
