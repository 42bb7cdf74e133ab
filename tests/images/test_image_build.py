"""The offline builder against the real engine: cache, content, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_isolate.__main__ import main
from pytest_isolate.container.engine import Engine
from pytest_isolate.images.build import BuiltImage, ImageBuildError, build_image
from pytest_isolate.images.recipe import KNOWN_SUITES, LABEL_RECIPE, recipe_for

REPO = Path(__file__).resolve().parents[2]


def _run_in_image(engine: Engine, tag: str, code: str) -> str:
    output = engine.client.containers.run(
        tag, ["python3", "-c", code], remove=True, network_mode="none"
    )
    return bytes(output).decode().strip()


@pytest.mark.parametrize("suite", sorted(KNOWN_SUITES))
def test_each_image_runs_the_python_of_its_suite(
    engine: Engine, base_images: dict[str, BuiltImage], suite: str
) -> None:
    version = _run_in_image(engine, base_images[suite].tag, "import sys; print(sys.version[:4])")
    assert version == KNOWN_SUITES[suite] == base_images[suite].python_version


def test_images_carry_the_recipe_digest_label(
    engine: Engine, base_images: dict[str, BuiltImage]
) -> None:
    for suite, built in base_images.items():
        labels = engine.client.images.get(built.tag).labels
        assert labels[LABEL_RECIPE] == recipe_for(f"debian:{suite}").digest()


def test_images_are_slimmed_below_150_megabytes(base_images: dict[str, BuiltImage]) -> None:
    for built in base_images.values():
        assert built.size_bytes < 150e6


def test_images_hold_no_documentation_or_apt_lists(
    engine: Engine, base_images: dict[str, BuiltImage]
) -> None:
    probe = (
        "import os; "
        "print(len(os.listdir('/usr/share/doc')) + len(os.listdir('/var/lib/apt/lists')))"
    )
    assert _run_in_image(engine, base_images["bookworm"].tag, probe) == "0"


def test_an_up_to_date_image_is_not_rebuilt(
    engine: Engine, base_images: dict[str, BuiltImage]
) -> None:
    said: list[str] = []
    started = time.monotonic()
    again = build_image(engine, recipe_for("debian:bookworm"), progress=said.append)
    assert again.cached
    assert again.image_id == base_images["bookworm"].image_id
    assert "nothing to do" in said[0]
    assert time.monotonic() - started < 5


def test_a_failed_build_removes_its_work_directory(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="debootstrap bookworm failed"):
        build_image(
            engine,
            recipe_for("debian:bookworm"),
            mirror="file:///nonexistent/debian",
            force=True,
            progress=lambda _m: None,
            work_parent=str(tmp_path),
        )
    assert list(tmp_path.iterdir()) == []


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_ctrl_c_during_debootstrap_leaves_no_directory_process_or_mount(tmp_path: Path) -> None:
    build = subprocess.Popen(
        [sys.executable, "-m", "pytest_isolate", "image", "build", "debian:bookworm", "--force"],
        env={**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not _processes_mentioning(f"{tmp_path}/pytest-isolate-image-"):
        assert time.monotonic() < deadline, "debootstrap never started"
        time.sleep(0.1)
    time.sleep(2)
    build.send_signal(signal.SIGINT)
    _, stderr = build.communicate(timeout=30)
    assert build.returncode == 130, stderr
    assert list(tmp_path.iterdir()) == []
    assert _processes_mentioning(str(tmp_path)) == []
    with open("/proc/self/mountinfo") as mounts:
        assert str(tmp_path) not in mounts.read()


def test_image_list_shows_each_image_with_its_python(
    base_images: dict[str, BuiltImage], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["image", "list"]) == 0
    listing = capsys.readouterr().out
    for suite, built in base_images.items():
        assert any(
            built.tag in line and KNOWN_SUITES[suite] in line for line in listing.splitlines()
        )


def test_image_build_refuses_an_unknown_flavour(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "build", "debian:sid"]) == 1
    assert "known flavours: debian:bookworm, debian:trixie" in capsys.readouterr().err
