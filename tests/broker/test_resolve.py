"""From marks to targets: defaults, matrices and their ids, without running anything."""

from __future__ import annotations

import pytest

from pytest_isolate.backends.builtin import register_builtin_backends
from pytest_isolate.backends.registry import BackendRegistry
from pytest_isolate.broker.resolve import expand_targets, label_ids, parse_matrix
from pytest_isolate.spec import Defaults, IsolateSpec, SpecError

WHERE = "test_x.py::test_x"


@pytest.fixture
def registry() -> BackendRegistry:
    registry = BackendRegistry()
    register_builtin_backends(registry.register)
    return registry


def marks(*specs: tuple[tuple[object, ...], dict[str, object]]) -> list[pytest.Mark]:
    return [pytest.mark.isolate(*args, **kwargs).mark for args, kwargs in specs]


def test_no_mark_and_no_default_backend_means_not_isolated(registry: BackendRegistry) -> None:
    assert expand_targets([], Defaults(), registry, WHERE) == []


def test_no_mark_with_a_default_backend_isolates(registry: BackendRegistry) -> None:
    (target,) = expand_targets([], Defaults(backend="process", timeout=3), registry, WHERE)
    assert (target.backend, target.timeout) == ("process", 3)


def test_mark_without_a_backend_means_process(registry: BackendRegistry) -> None:
    (target,) = expand_targets(marks(((), {"timeout": 2})), Defaults(), registry, WHERE)
    assert (target.backend, target.timeout) == ("process", 2)


def test_backend_given_as_keyword(registry: BackendRegistry) -> None:
    (target,) = expand_targets(marks(((), {"backend": "process"})), Defaults(), registry, WHERE)
    assert target.backend == "process"


def test_each_mark_is_one_target(registry: BackendRegistry) -> None:
    targets = expand_targets(
        marks((("process",), {}), (("process",), {"timeout": 1})), Defaults(), registry, WHERE
    )
    assert [t.timeout for t in targets] == [None, 1.0]


def test_two_backend_names_in_one_mark_is_an_error(registry: BackendRegistry) -> None:
    with pytest.raises(SpecError, match="takes one backend name, got 2 arguments"):
        expand_targets(marks((("process", "process"), {})), Defaults(), registry, WHERE)


def test_run_matrix_applies_to_unmarked_tests_only(registry: BackendRegistry) -> None:
    matrix = parse_matrix("process, process", Defaults(), registry)
    assert len(expand_targets([], Defaults(), registry, WHERE, matrix)) == 2
    marked = expand_targets(marks((("process",), {})), Defaults(), registry, WHERE, matrix)
    assert len(marked) == 1


def test_matrix_with_an_unknown_backend_is_an_error(registry: BackendRegistry) -> None:
    with pytest.raises(SpecError, match="unknown backend 'nope'"):
        parse_matrix("process,nope", Defaults(), registry)


def test_matrix_variant_on_a_backend_without_variants_is_an_error(
    registry: BackendRegistry,
) -> None:
    with pytest.raises(SpecError, match="takes no ':' variant"):
        parse_matrix("process:py311", Defaults(), registry)


@pytest.mark.parametrize(
    ("labels", "ids"),
    [
        (["process"], ["process"]),
        (["process", "process"], ["process", "process-1"]),
        (["process", "process", "process"], ["process", "process-1", "process-2"]),
        (["process", "seccomp"], ["process", "seccomp"]),
    ],
)
def test_matrix_ids_are_labels_made_unique(labels: list[str], ids: list[str]) -> None:
    assert label_ids([IsolateSpec(backend=label) for label in labels]) == ids


def test_variant_label_names_backend_and_variant() -> None:
    assert IsolateSpec(backend="container", variant="py311").label == "container:py311"
