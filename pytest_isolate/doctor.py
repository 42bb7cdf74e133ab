"""``pytest --isolate-doctor``: which backends work here, why not, and how to fix it."""

from __future__ import annotations

import sys

from pytest_isolate.backends.registry import BackendRegistry


def doctor_lines(registry: BackendRegistry) -> list[str]:
    lines = ["pytest-isolate doctor", ""]
    width = max((len(n) for n in registry.names()), default=8)
    for backend in registry:
        availability = registry.availability(backend.name)
        status = "ok" if availability else "UNAVAILABLE"
        lines.append(f"  {backend.name:<{width}}  {status:<11}  {backend.summary}")
        if availability.reason:
            lines.append(f"  {'':<{width}}  {'':<11}  why: {availability.reason}")
        if not availability and availability.fix:
            lines.append(f"  {'':<{width}}  {'':<11}  fix: {availability.fix}")
        for key, value in availability.details:
            lines.append(f"  {'':<{width}}  {'':<11}  {key}: {value}")
    return lines


def gvisor_lines(registry: BackendRegistry) -> list[str]:
    """Whether gVisor's runtime, when the engine has it registered, really starts a sandbox."""
    if "container" not in registry.names():
        return []
    availability = registry.availability("container")  # asked once, with the engine's runtimes
    if not availability or "runsc" not in dict(availability.details).get("runtimes", "").split(
        ", "
    ):
        return []
    from pytest_isolate.backends.container_config import DEFAULT_IMAGE
    from pytest_isolate.container.engine import runtime_works

    ok, words = runtime_works("runsc", DEFAULT_IMAGE)
    return ["", f"  gVisor (runsc): {'works' if ok else 'FAILS'}: {words}"]


def arch_lines(registry: BackendRegistry) -> list[str]:
    """Per architecture: whether its programs run here, and whether its image is built."""
    if "container" not in registry.names() or not registry.availability("container"):
        return []
    from pytest_isolate.arches import ARCHES, binfmt_fix, binfmt_state, host_arch, needs_emulation
    from pytest_isolate.backends.container_config import default_image
    from pytest_isolate.container.engine import connect_engine
    from pytest_isolate.images.build import list_images
    from pytest_isolate.images.recipe import recipe_for

    with connect_engine() as engine:
        built = {image.tag for image in list_images(engine)}
    lines = ["", "  architectures (isolate('container', arch=...)):"]
    for arch in ARCHES.values():
        if arch == host_arch():
            lines.append(f"    {arch.debian:<8} this machine's own")
            continue
        missing = binfmt_state(arch)
        if missing is not None:
            lines.append(f"    {arch.debian:<8} cannot run here: {missing}")
            lines.append(f"    {'':<8} fix: {binfmt_fix(arch)}")
            continue
        how = f"under qemu-user ({arch.binfmt})" if needs_emulation(arch) else "natively"
        tag = default_image(arch)
        state = "built" if tag in built else f"missing; build it: {recipe_for(tag).build_command}"
        lines.append(f"    {arch.debian:<8} runs {how}; image {tag}: {state}")
    return lines


def guest_arch_lines(registry: BackendRegistry) -> list[str]:
    """Per foreign guest architecture: its QEMU, and whether its kit is in the cache."""
    if "vm" not in registry.names():
        return []
    import shutil

    from pytest_isolate.vm.foreign_kit import fetch_command, find_kit
    from pytest_isolate.vm.guest_arch import GUEST_ARCHES, HOST_GUEST

    lines = ["", "  vm guests of other architectures (isolate('vm', arch=...)):"]
    for arch in GUEST_ARCHES.values():
        if arch == HOST_GUEST:
            continue
        words = []
        if shutil.which(arch.qemu) is None:
            words.append(f"{arch.qemu} missing (apt-get install {arch.qemu_package})")
        kit = find_kit(arch.debian)
        if kit is None:
            words.append(f"kernel and userland missing; fetch them: {fetch_command(arch.debian)}")
        else:
            words.append(f"kernel {kit.release} and userland fetched")
        status = "ok" if len(words) == 1 and kit is not None else "UNAVAILABLE"
        lines.append(f"    {arch.debian:<8} {status}: {'; '.join(words)}")
    return lines


def print_doctor(registry: BackendRegistry) -> int:
    """Print the table; exit status 0 when every backend works, 1 otherwise."""
    lines = doctor_lines(registry) + gvisor_lines(registry)
    for line in lines + arch_lines(registry) + guest_arch_lines(registry):
        sys.stdout.write(line + "\n")
    return 0 if all(registry.availability(n) for n in registry.names()) else 1
