"""From an item's marks to its target: closest level wins, several marks make a matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest

from pytest_isolate.arches import arch_named
from pytest_isolate.backends.base import backend_channels, backend_variant_keyword
from pytest_isolate.backends.registry import BackendRegistry, StandInBackend
from pytest_isolate.spec import (
    DEFAULT_BACKEND,
    Defaults,
    IsolateSpec,
    SpecError,
    build_spec,
    check_backend_name,
)

MATRIX_ARG = "isolate_target"


@dataclass(frozen=True)
class MarkRequest:
    """One ``isolate(...)`` mark, reduced to data."""

    backend: object
    kwargs: tuple[tuple[str, object], ...]


def _mark_request(mark: pytest.Mark, where: str) -> MarkRequest:
    if len(mark.args) > 1:
        raise SpecError(
            f"{where}: isolate() takes one backend name, got {len(mark.args)} arguments"
        )
    backend = mark.args[0] if mark.args else mark.kwargs.get("backend", DEFAULT_BACKEND)
    kwargs = tuple((k, v) for k, v in mark.kwargs.items() if k != "backend")
    return MarkRequest(backend, kwargs)


def closest_marks(node: pytest.Item | pytest.Collector, honour_forked: bool) -> list[pytest.Mark]:
    """The isolate marks of the closest level (function over class over module) that has any."""
    for level in reversed(node.listchain()):
        marks = [m for m in level.own_markers if m.name == "isolate"]
        if not marks and honour_forked and any(m.name == "forked" for m in level.own_markers):
            marks = [pytest.mark.isolate("process").mark]  # pytest-forked's mark, honoured
        if marks:
            return marks
    return []


def expand_targets(
    marks: Sequence[pytest.Mark],
    defaults: Defaults,
    registry: BackendRegistry,
    where: str,
    matrix: Sequence[IsolateSpec] = (),
) -> list[IsolateSpec]:
    """Every target this test runs in: one per mark, split further by each backend's variants."""
    if not marks:
        if matrix:
            return list(matrix)
        if defaults.backend is None:
            return []
        marks = [pytest.mark.isolate(defaults.backend).mark]
    targets: list[IsolateSpec] = []
    for mark in marks:
        request = _mark_request(mark, where)
        spec = resolve_one(request, defaults, registry, where)
        targets.extend(registry.get(spec.backend).variants(spec))
    return targets


def resolve_one(
    request: MarkRequest, defaults: Defaults, registry: BackendRegistry, where: str
) -> IsolateSpec:
    name = check_backend_name(request.backend, registry.names(), where)
    backend = registry.get(name)
    kwargs = {**defaults.options_for(name), **dict(request.kwargs)}
    keywords = backend.keywords
    if isinstance(backend, StandInBackend):  # keywords unknown here: its tests say why it is out
        keywords = dict.fromkeys(kwargs, "")
    spec = build_spec(name, kwargs, defaults, keywords, where)
    channels = backend_channels(backend)
    if spec.channel not in channels:
        if "channel" in kwargs:
            raise SpecError(
                f"{where}: channel={spec.channel!r} is not supported by backend {name!r} "
                f"(it talks over its own stream); valid channels: {', '.join(channels)}"
            )
        spec = replace(spec, channel=channels[0])  # --isolate-channel is for forked backends
    backend.validate(spec, where)
    return spec


def parse_matrix(text: str, defaults: Defaults, registry: BackendRegistry) -> list[IsolateSpec]:
    """``--isolate-matrix=process,container:IMG,container@arm64`` -> specs.

    ``@ARCH`` at the end of an entry sets the backend's ``arch=`` (an image
    named by digest, ``IMG@sha256:...``, keeps its ``@``). A bad entry is a
    usage error.
    """
    specs: list[IsolateSpec] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        entry, arch = _split_arch(entry)
        backend, _, variant = entry.partition(":")
        kwargs: dict[str, object] = {}
        if arch is not None:
            if backend in registry and "arch" not in registry.get(backend).keywords:
                raise SpecError(f"--isolate-matrix: backend {backend!r} takes no '@{arch}'")
            kwargs["arch"] = arch
        if variant:
            key = backend_variant_keyword(registry.get(backend)) if backend in registry else None
            if key is None:
                raise SpecError(f"--isolate-matrix: backend {backend!r} takes no ':' variant")
            kwargs[key] = variant
        spec = resolve_one(
            MarkRequest(backend, tuple(kwargs.items())), defaults, registry, "--isolate-matrix"
        )
        specs.extend(registry.get(spec.backend).variants(spec))
    return specs


def _split_arch(entry: str) -> tuple[str, str | None]:
    """``container@arm64`` -> (``container``, ``arm64``); no architecture after ``@``: as is."""
    head, at, tail = entry.rpartition("@")
    if not at:
        return entry, None
    try:
        arch_named(tail)
    except ValueError:
        return entry, None
    return head, tail


def label_ids(targets: Sequence[IsolateSpec]) -> list[str]:
    """Ids for matrix items; identical labels get a counter so ids stay unique."""
    ids: list[str] = []
    for spec in targets:
        label = spec.label
        if label in ids:
            label = f"{label}-{sum(1 for i in ids if i.startswith(label))}"
        ids.append(label)
    return ids
