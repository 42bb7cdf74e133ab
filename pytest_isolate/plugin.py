"""The pytest entry point: options, ini keys, the marker, and whether the broker is needed.

The real work lives in ``broker.session.IsolateSession``, registered only
when this run can isolate anything; with ``--no-isolate`` the plugin costs
nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable

import pytest

from pytest_isolate import hookspecs
from pytest_isolate.backends.registry import BackendRegistry
from pytest_isolate.pytest_compat import configure_for_command, unconfigure_after_command
from pytest_isolate.spec import COMMON_KEYWORDS, Defaults, SpecError, parse_seconds, parse_size

SESSION_PLUGIN = "isolate-session"
#: Untrusted mode (``--isolate-untrusted``) has its own hooks and session plugin.
pytest_plugins = ["pytest_isolate.untrusted.hooks"]
REGISTRY_KEY = pytest.StashKey[BackendRegistry]()

MARKER_HELP = (
    "isolate(backend='process', **options): run this test (setup, call, teardown and "
    "its fixtures) in an isolated target and bring the reports back. Backends: process, "
    "seccomp, chroot, container, vm (pytest --isolate-doctor shows which work here). "
    "Common options: " + ", ".join(f"{k} ({v})" for k, v in COMMON_KEYWORDS.items()) + ". "
    "Several isolate marks at the same level make one test per target."
)


class PytestIsolateWarning(pytest.PytestWarning):
    """Something about isolation the user should know but that does not stop the run."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


PREFORK_HELP = (
    "fork the next test's target (process, seccomp, chroot), or start its fresh container "
    "or guest, "
    "while the current test runs, so it waits ready, and report a forked test while its "
    "target exits (ini isolate_prefork, default true); --isolate-no-prefork starts each "
    "target only when its test starts and waits for its exit"
)


def prefork_enabled(config: pytest.Config) -> bool:
    """Command line (``--isolate-no-prefork``) over the ini key ``isolate_prefork``."""
    flag = config.getoption("isolate_prefork", None)
    return bool(config.getini("isolate_prefork") if flag is None else flag)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("isolate", "pytest-isolate: run tests in isolated targets")
    group.addoption(
        "--isolate",
        dest="isolate",
        nargs="?",
        const="process",
        default=None,
        metavar="BACKEND",
        help=(
            "isolate every unmarked test too, with BACKEND (default: process) "
            "or BACKEND:VARIANT (container:IMAGE)"
        ),
    )
    group.addoption(
        "--no-isolate",
        dest="no_isolate",
        action="store_true",
        default=False,
        help="run every test in-process, ignoring isolate marks (for --pdb and debugging)",
    )
    for name, what in (
        ("timeout", "wall-clock seconds before an isolated test is killed"),
        ("mem-limit", "memory limit of an isolated test: bytes, or 512M, 2G"),
        ("cpu-limit", "CPU seconds an isolated test may use"),
    ):
        dest = "isolate_" + name.replace("-", "_")
        group.addoption(f"--isolate-{name}", dest=dest, default=None, help=what)
        parser.addini(dest, what, default=None)
    group.addoption(
        "--isolate-unavailable",
        dest="isolate_unavailable",
        choices=("fail", "skip"),
        default=None,
        help="what a test whose backend cannot run here does: fail (default) or skip",
    )
    parser.addini("isolate_unavailable", "fail or skip (see --isolate-unavailable)", default=None)
    group.addoption(
        "--isolate-channel",
        dest="isolate_channel",
        choices=("pipe", "shm"),
        default=None,
        help="broker <-> target channel for forked backends (default: pipe)",
    )
    parser.addini("isolate_channel", "pipe or shm (see --isolate-channel)", default=None)
    runtime_help = (
        "container runtime of the engine for every container test without runtime=, "
        "e.g. runsc (gVisor); default: the engine's"
    )
    group.addoption(
        "--isolate-container-runtime",
        dest="isolate_container_runtime",
        default=None,
        metavar="RUNTIME",
        help=runtime_help,
    )
    parser.addini("isolate_container_runtime", runtime_help, default=None)
    from pytest_isolate.backends import container_pool

    container_pool.add_options(group, parser)
    group.addoption(
        "--isolate-matrix",
        dest="isolate_matrix",
        default=None,
        metavar="SPEC,...",
        help="run every unmarked test once per target: BACKEND or container:IMAGE, comma-separated",
    )
    group.addoption(
        "--isolate-doctor",
        dest="isolate_doctor",
        action="store_true",
        default=False,
        help="show which backends work on this machine, why not, and how to fix it; then exit",
    )
    group.addoption(
        "--isolate-selftest",
        dest="isolate_selftest",
        action="store_true",
        default=False,
        help="try to escape from each available backend (files, environment, sockets, "
        "system calls, capabilities) and print what held; exit 1 if a documented stop did not",
    )
    group.addoption(
        "--isolate-no-prefork",
        dest="isolate_prefork",
        action="store_false",
        default=None,
        help=PREFORK_HELP,
    )
    parser.addini("isolate_prefork", PREFORK_HELP, type="bool", default=True)
    parser.addini("isolate", "backend for unmarked tests (as --isolate=BACKEND)", default=None)
    parser.addini(
        "isolate_inherit_fixtures",
        "let a forked target use the project's session, package, module and class fixtures "
        "that the broker already set up for plain tests (order-dependent); default: each "
        "target sets them up itself",
        type="bool",
        default=False,
    )
    parser.addini(
        "isolate_share_session_fixtures",
        "in a container, a guest or a jail on another root: set up the project's session "
        "fixtures once in the target's agent and share them with every test it runs (each "
        "still in its own fork); default: each test sets them up itself",
        type="bool",
        default=False,
    )


def _option(config: pytest.Config, dest: str) -> object:
    value = config.getoption(dest)
    if value is None:
        value = config.getini(dest) or None
    return value


def read_defaults(config: pytest.Config, registry: BackendRegistry) -> Defaults:
    """Command line over ini; a bad value is a usage error that says how to write it."""
    try:
        backend = _option(config, "isolate")
        if isinstance(backend, str) and ":" in backend:
            backend = None  # BACKEND:VARIANT is a one-entry matrix (see pytest_configure)
        if backend is not None and backend not in registry:
            raise SpecError(
                f"--isolate={backend!r}: unknown backend; valid backends: "
                + ", ".join(registry.names())
            )
        return Defaults(
            backend=backend if isinstance(backend, str) else None,
            timeout=parse_seconds(_option(config, "isolate_timeout"), "--isolate-timeout"),
            mem_limit=parse_size(_option(config, "isolate_mem_limit"), "--isolate-mem-limit"),
            cpu_limit=parse_seconds(_option(config, "isolate_cpu_limit"), "--isolate-cpu-limit"),
            channel=str(_option(config, "isolate_channel") or "pipe"),
            backend_options=_backend_options(config),
        )
    except SpecError as exc:
        raise pytest.UsageError(f"pytest-isolate: {exc}") from None


def _backend_options(
    config: pytest.Config,
) -> tuple[tuple[str, tuple[tuple[str, Hashable], ...]], ...]:
    """Backend keywords given run-wide on the command line or in the ini."""
    runtime = _option(config, "isolate_container_runtime")
    if runtime is None:
        return ()
    return (("container", (("runtime", str(runtime)),)),)


def build_registry(config: pytest.Config) -> BackendRegistry:
    registry = BackendRegistry()
    config.hook.pytest_isolate_register_backends(register=registry.register)
    return registry


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    forked_installed = config.pluginmanager.has_plugin("forked")
    if not forked_installed:
        config.addinivalue_line(
            "markers",
            "forked: run this test in a forked process (pytest-isolate: isolate('process'))",
        )
    registry = build_registry(config)
    config.stash[REGISTRY_KEY] = registry
    from pytest_isolate.integrations.coverage import CoverageFlush

    config.pluginmanager.register(CoverageFlush(), "isolate-coverage-flush")
    if config.getoption("isolate_doctor") or config.getoption("isolate_selftest"):
        return
    if config.getoption("isolate_untrusted", None):
        return  # untrusted.hooks registers its own session instead
    if config.getoption("no_isolate"):
        if config.getoption("isolate") or config.getoption("isolate_matrix"):
            warnings.warn(
                PytestIsolateWarning("--no-isolate given: every test runs in-process, unisolated"),
                stacklevel=1,
            )
        return
    defaults = read_defaults(config, registry)
    from pytest_isolate.broker.resolve import parse_matrix
    from pytest_isolate.broker.session import IsolateSession

    matrix_text = config.getoption("isolate_matrix")
    isolate_value = _option(config, "isolate")
    if isinstance(isolate_value, str) and ":" in isolate_value:  # --isolate=container:IMAGE
        matrix_text = ",".join(filter(None, (isolate_value, matrix_text)))
    try:
        matrix = parse_matrix(matrix_text, defaults, registry) if matrix_text else []
    except SpecError as exc:
        raise pytest.UsageError(f"pytest-isolate: {exc}") from None
    unavailable = str(_option(config, "isolate_unavailable") or "fail")
    if unavailable not in ("fail", "skip"):
        raise pytest.UsageError(
            f"pytest-isolate: isolate_unavailable={unavailable!r}; valid values: fail, skip"
        )
    from pytest_isolate.backends import container_pool

    container_pool.configure(config, registry)
    session = IsolateSession(
        config,
        registry,
        defaults,
        matrix,
        honour_forked=not forked_installed,
        unavailable=unavailable,
        prefork=prefork_enabled(config),
    )
    config.pluginmanager.register(session, SESSION_PLUGIN)
    from pytest_isolate.integrations import register_integrations

    register_integrations(config, session)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    doctor, selftest = config.getoption("isolate_doctor"), config.getoption("isolate_selftest")
    if not (doctor or selftest):
        return None
    configure_for_command(config)
    try:
        registry = config.stash[REGISTRY_KEY]
        if doctor:
            from pytest_isolate.doctor import print_doctor

            return print_doctor(registry)
        from pytest_isolate.selftest import print_selftest

        runtime = _option(config, "isolate_container_runtime")
        return print_selftest(
            registry,
            verbose=config.option.verbose > 0,
            container_runtime=str(runtime) if runtime else None,
        )
    finally:
        unconfigure_after_command(config)


def pytest_isolate_register_backends(register: object) -> None:
    from pytest_isolate.backends.builtin import register_builtin_backends

    register_builtin_backends(register)  # type: ignore[arg-type]
