"""``python -m pytest_isolate image build|list|export``: the image builder's command line."""

from __future__ import annotations

import argparse
import sys
import time

from pytest_isolate.arches import ARCHES
from pytest_isolate.container.engine import EngineUnavailableError, connect_engine
from pytest_isolate.images.apt_sources import NoDebianMirrorError
from pytest_isolate.images.build import ImageBuildError, build_image, list_images
from pytest_isolate.images.recipe import KNOWN_SUITES, UnknownFlavourError, recipe_for


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``image`` subcommand to the top-level parser."""
    image = subparsers.add_parser("image", help="build and list offline base images")

    def _usage(_args: argparse.Namespace) -> int:
        image.print_help()
        return 2

    image.set_defaults(func=_usage)
    actions = image.add_subparsers(dest="image_action", metavar="ACTION")

    build = actions.add_parser("build", help="build base images with debootstrap (cached)")
    build.add_argument(
        "flavours",
        nargs="+",
        metavar="FLAVOUR",
        help="e.g. " + ", ".join(f"debian:{suite}" for suite in KNOWN_SUITES),
    )
    build.add_argument(
        "--arch",
        help="architecture, by Debian's name (default: this machine's): "
        + ", ".join(ARCHES)
        + "; a foreign one runs under qemu-user-static",
    )
    build.add_argument("--mirror", help="Debian mirror URL (default: from apt's sources)")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.add_argument("--engine", help="engine URL (default: DOCKER_HOST or the local socket)")
    build.set_defaults(func=run_build)

    listing = actions.add_parser("list", help="list images made by this builder")
    listing.add_argument("--engine", help="engine URL (default: DOCKER_HOST or the local socket)")
    listing.set_defaults(func=run_list)

    export = actions.add_parser(
        "export", help="unpack an image into a directory (a root for isolate('chroot', rootfs=))"
    )
    export.add_argument("flavour", metavar="FLAVOUR", help="e.g. debian:bookworm, or a full tag")
    export.add_argument("directory", metavar="DIR", help="created; kept if it exists")
    export.add_argument("--arch", help="the image of this architecture (Debian's name)")
    export.add_argument("--force", action="store_true", help="replace DIR if it exists")
    export.add_argument("--engine", help="engine URL (default: DOCKER_HOST or the local socket)")
    export.set_defaults(func=run_export)


def _say(message: str) -> None:
    print(f"[image] {message}", flush=True)


def run_build(args: argparse.Namespace) -> int:
    try:
        recipes = [recipe_for(flavour, args.arch) for flavour in args.flavours]
        with connect_engine(args.engine) as engine:
            for recipe in recipes:
                started = time.monotonic()
                build_image(engine, recipe, mirror=args.mirror, force=args.force, progress=_say)
                _say(f"{recipe.tag}: {time.monotonic() - started:.1f} s in all")
    except (
        UnknownFlavourError,
        EngineUnavailableError,
        NoDebianMirrorError,
        ImageBuildError,
    ) as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[image] interrupted; work directory removed", file=sys.stderr)
        return 130
    return 0


def run_list(args: argparse.Namespace) -> int:
    try:
        with connect_engine(args.engine) as engine:
            images = list_images(engine)
    except EngineUnavailableError as exc:
        print(exc, file=sys.stderr)
        return 1
    for built in images:
        print(
            f"{built.tag:40} python {built.python_version:5} {built.size_bytes / 1e6:6.0f} MB "
            f"recipe {built.recipe_digest} {built.image_id[7:19]}"
        )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pytest_isolate.images.export import ImageExportError, export_rootfs

    try:
        image = args.flavour if "/" in args.flavour else recipe_for(args.flavour, args.arch).tag
        with connect_engine(args.engine) as engine:
            started = time.monotonic()
            path = export_rootfs(engine, image, Path(args.directory), force=args.force)
    except (UnknownFlavourError, EngineUnavailableError, ImageExportError) as exc:
        print(exc, file=sys.stderr)
        return 1
    _say(f"{image} -> {path} in {time.monotonic() - started:.1f} s")
    return 0
