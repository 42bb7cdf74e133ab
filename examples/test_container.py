"""container: one suite across a platform matrix, each image built offline by our own builder.

``python -m pytest_isolate image build debian:bookworm debian:trixie`` makes the
images, ``... debian:bookworm --arch arm64`` those of other architectures
(scripts/setup-machine does both); no registry is needed.
"""

import os
import pathlib
import sys

import pytest

from pytest_isolate import isolate

HERE = pathlib.Path(__file__).resolve()
IMAGES = ["pytest-isolate/debian:bookworm", "pytest-isolate/debian:trixie"]


@isolate("container", image=IMAGES)
def test_runs_on_each_python_of_the_matrix():
    print("python", sys.version.split()[0])
    assert sys.version_info >= (3, 11)


@isolate("container", image=IMAGES[0])
def test_no_network_and_read_only_project():
    assert os.listdir("/sys/class/net") == ["lo"]
    with pytest.raises(OSError):
        (HERE.parent / "written-by-a-test.txt").write_text("no")


@isolate("container", image=IMAGES[0])
def test_unprivileged_and_without_the_docker_socket():
    assert os.getuid() == 65534
    assert not os.path.exists("/var/run/docker.sock")


@isolate("container", arch=["amd64", "arm64", "i386"])
def test_pointer_size_and_machine_on_each_architecture():
    """arm64 runs under qemu-user (binfmt_misc), i386 natively: one test, three platforms."""
    import platform
    import struct

    print(platform.machine(), struct.calcsize("P") * 8, "bit")
    assert struct.calcsize("P") == (4 if platform.architecture()[0] == "32bit" else 8)
