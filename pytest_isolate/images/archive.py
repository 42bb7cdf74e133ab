"""A root directory as an image archive that ``docker load`` takes, with its platform said.

``docker import`` makes an image of the engine's own architecture whatever
the root holds (Docker 20.10 ignores ``--platform`` there), and an arm64 root
tagged amd64 makes every later ``docker create`` warn and guess. ``docker
load`` takes the image's configuration as written, architecture included, so
the builder writes the archive ``docker save`` would have written: one layer
(the root, as ``tar`` makes it), a configuration naming the platform, the
labels, ``LANG`` and the command, and a manifest naming the tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from typing import Any

from pytest_isolate.arches import Arch

#: Debian's default PATH for root (what an imported image gets from the engine).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ArchiveError(RuntimeError):
    """The archive could not be written or the engine refused it."""


def image_config(arch: Arch, labels: dict[str, str], layer_digest: str) -> dict[str, Any]:
    """The image's configuration (OCI image config, as ``docker save`` writes it)."""
    config: dict[str, Any] = {
        "architecture": arch.docker_architecture,
        "os": "linux",
        "config": {
            "Env": [f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8"],
            "Cmd": ["/usr/bin/python3"],
            "Labels": dict(sorted(labels.items())),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "pytest-isolate image build (debootstrap)"}],
    }
    if arch.docker_variant:
        config["variant"] = arch.docker_variant
    return config


def write_archive(root: str, directory: str, tag: str, arch: Arch, labels: dict[str, str]) -> str:
    """Lay out the archive of ``root`` in ``directory``; return the image id it will load as."""
    layer = os.path.join(directory, "layer.tar")
    status = subprocess.run(
        ["tar", "-C", root, "--numeric-owner", "-cf", layer, "."],
        stdin=subprocess.DEVNULL,
        check=False,
    ).returncode
    if status != 0:
        raise ArchiveError(f"pytest-isolate: tar of the new root failed with status {status}")
    digest = hashlib.sha256()
    with open(layer, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    config = json.dumps(
        image_config(arch, labels, f"sha256:{digest.hexdigest()}"), sort_keys=True
    ).encode()
    config_id = hashlib.sha256(config).hexdigest()
    with open(os.path.join(directory, f"{config_id}.json"), "wb") as f:
        f.write(config)
    manifest = [{"Config": f"{config_id}.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return f"sha256:{config_id}"


def load_archive(api: Any, directory: str) -> None:
    """Stream ``directory`` (as a tar) into the engine's ``docker load``."""
    tar = subprocess.Popen(
        ["tar", "-C", directory, "-c", "."], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert tar.stdout is not None
    try:
        answers = list(api.load_image(tar.stdout))
    finally:
        tar.stdout.close()
        status = tar.wait()
    if status != 0:
        raise ArchiveError(f"pytest-isolate: tar of the image archive failed with status {status}")
    for answer in answers:
        if isinstance(answer, dict) and answer.get("error"):
            raise ArchiveError(
                f"pytest-isolate: the engine did not load the image: {answer['error']}"
            )
