"""``python -m pytest_isolate vm fetch --arch ARCH``: what a guest of another architecture boots."""

from __future__ import annotations

import argparse
import sys
import time

from pytest_isolate.vm.guest_arch import GUEST_ARCHES, HOST_GUEST


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``vm`` subcommand to the top-level parser."""
    vm = subparsers.add_parser("vm", help="fetch what guests of other architectures boot")

    def _usage(_args: argparse.Namespace) -> int:
        vm.print_help()
        return 2

    vm.set_defaults(func=_usage)
    actions = vm.add_subparsers(dest="vm_action", metavar="ACTION")
    fetch = actions.add_parser(
        "fetch",
        help="download Debian's kernel and busybox for ARCH and export the image builder's "
        "userland for it into the cache (needs the image: python -m pytest_isolate image "
        "build debian:bookworm --arch ARCH)",
    )
    foreign = [name for name in GUEST_ARCHES if name != HOST_GUEST.debian]
    fetch.add_argument("--arch", required=True, choices=foreign)
    fetch.add_argument("--mirror", help="Debian mirror URL (default: from apt's sources)")
    fetch.add_argument("--force", action="store_true", help="fetch again even if the kit is there")
    fetch.set_defaults(func=run_fetch)


def _say(message: str) -> None:
    print(f"[vm] {message}", flush=True)


def run_fetch(args: argparse.Namespace) -> int:
    from pytest_isolate.container.engine import EngineUnavailableError
    from pytest_isolate.images.apt_sources import NoDebianMirrorError
    from pytest_isolate.images.recipe import recipe_for
    from pytest_isolate.vm.foreign_kit import KIT_SUITE, KitError, fetch_kit, find_kit

    existing = find_kit(args.arch)
    if existing is not None and not args.force:
        _say(f"{args.arch} kit: up to date (kernel {existing.release}), nothing to do")
        return 0
    image = recipe_for(f"debian:{KIT_SUITE}", args.arch).tag
    started = time.monotonic()
    try:
        kit = fetch_kit(args.arch, image, progress=_say, mirror=args.mirror)
    except (KitError, EngineUnavailableError, NoDebianMirrorError) as exc:
        print(f"pytest-isolate: cannot fetch the {args.arch} guest kit: {exc}", file=sys.stderr)
        return 1
    _say(f"{args.arch} kit: kernel {kit.release}, in {time.monotonic() - started:.1f} s")
    return 0
