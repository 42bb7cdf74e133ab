"""``--isolate-engines``: the run's engine pool, its header and summary lines, and its images.

The pool itself (which engine takes the next container) is
``container.engine_pool``; this module ties it to pytest: it reads the
option, gives the pool to the container backend,
names the engines in the header and counts what each ran at the end. It
also gives an engine an image it lacks, from the local engine.

An engine lost during a test fails that test as an infrastructure failure
naming the engine. ``--isolate-engine-retry`` runs such a test once more on
another engine; it is off by default: a test that brought its engine down
(a kernel bug it hit, a host it filled) must not be handed a second one, and
a retried result hides that an engine was lost.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_isolate.backends.registry import BackendRegistry
    from pytest_isolate.container.engine_pool import EnginePool, PoolMember

#: The key of a worker's pool counts in xdist's ``workeroutput``.
WORKER_POOL = "isolate_engine_pool"

ENGINES_HELP = (
    "Docker engines to spread container targets over, comma-separated DOCKER_HOST URLs: "
    "unix://, tcp:// (TLS from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) or ssh://user@host; "
    "default: DOCKER_HOST alone"
)
RETRY_HELP = (
    "run a container test once more on another engine of --isolate-engines when its "
    "engine is lost during the test (default: it fails as an infrastructure failure)"
)


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--isolate-engines",
        dest="isolate_engines",
        default=None,
        metavar="URL,...",
        help=ENGINES_HELP,
    )
    parser.addini("isolate_engines", ENGINES_HELP, default=None)
    group.addoption(
        "--isolate-engine-retry",
        dest="isolate_engine_retry",
        action="store_true",
        default=None,
        help=RETRY_HELP,
    )
    parser.addini("isolate_engine_retry", RETRY_HELP, type="bool", default=False)


def configure(config: pytest.Config, registry: BackendRegistry) -> None:
    """Make the run's pool from the option (or ini), if any; a bad URL is a usage error."""
    value = config.getoption("isolate_engines", None) or config.getini("isolate_engines") or None
    if not value:
        return  # a run without a pool imports none of it
    from pytest_isolate.container.engine_pool import EnginePool, split_engine_urls

    try:
        urls = split_engine_urls(value)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if urls:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
        pool = EnginePool(urls, first=int(worker) if worker.isdigit() else 0)
        from pytest_isolate.backends.container import ContainerBackend

        backend = registry.get("container") if "container" in registry else None
        if isinstance(backend, ContainerBackend):
            backend.pool = pool
        config.pluginmanager.register(PoolReport(pool), "isolate-engine-pool")


def retry_lost(config: pytest.Config) -> bool:
    flag = config.getoption("isolate_engine_retry", None)
    return bool(config.getini("isolate_engine_retry") if flag is None else flag)


class PoolReport:
    """The pool in the header (who takes part, who is left out) and at the end (who ran what)."""

    def __init__(self, pool: EnginePool) -> None:
        self.pool = pool

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        return self.pool.header_lines()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        lines = self.pool.summary_lines()
        if lines:
            terminalreporter.write_sep("-", "pytest-isolate engine pool")
            for line in lines:
                terminalreporter.write_line(line)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """An xdist worker: hand what it did with the pool to the controller."""
        workeroutput = getattr(session.config, "workeroutput", None)
        if isinstance(workeroutput, dict):
            workeroutput[WORKER_POOL] = self.pool.counts()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """The controller: add a finished worker's containers per engine to the summary."""
        self.pool.add_counts(getattr(node, "workeroutput", {}).get(WORKER_POOL))

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.pool.close()


def lost_message(member: PoolMember, pool: EnginePool) -> str:
    """The failure of a test whose engine went away under it."""
    others = [other.url for other in pool.usable()]
    rest = f"the run goes on with {', '.join(others)}" if others else "no engine is left"
    return (
        f"infrastructure failure: the Docker engine {member.url} was lost during this test "
        f"({member.lost}); {rest}"
    )


def give_image(member: PoolMember, image: str, say: Any) -> None:
    """Make sure ``member``'s engine has ``image``, loading it from the local engine if not.

    Raises ``ContainerStartError`` naming both engines and the build command
    when neither has it or the copy fails.
    """
    from pytest_isolate.backends.container_config import missing_image_message
    from pytest_isolate.backends.container_target import ContainerStartError
    from pytest_isolate.container.engine import EngineUnavailableError, connect_engine
    from pytest_isolate.container.image_transfer import ImageTransferError, copy_image, image_id

    assert member.engine is not None
    if image_id(member.engine, image) is not None:
        return
    try:
        local = connect_engine(None, timeout=30)
    except EngineUnavailableError as exc:
        raise ContainerStartError(
            f"image {image!r} is missing on {member.url}, and the local engine to load it "
            f"from does not answer: {exc}"
        ) from None
    with contextlib.closing(local):
        if local.url == member.url:
            raise ContainerStartError(missing_image_message(image))
        try:
            copy_image(local, member.engine, image, say)
        except ImageTransferError as exc:
            raise ContainerStartError(
                f"image {image!r} is missing on {member.url} and could not be loaded from "
                f"{local.url}: {exc}; {missing_image_message(image)}"
            ) from None
