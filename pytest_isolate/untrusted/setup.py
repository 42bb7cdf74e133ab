"""From the trusted command line to an ``UntrustedSession``: target, ceiling, passed env.

Every value here comes from the command line or the CI's environment, never
from the project: ``--isolate-untrusted`` names the target,
``--isolate-timeout``/``--isolate-mem-limit``/``--isolate-cpu-limit`` set the
ceiling (read from the command line only: the project's ini could raise
them), ``--isolate-untrusted-env`` names what of this environment the tests
may see. A bad value is a usage error before anything starts.
"""

from __future__ import annotations

import os

import pytest

from pytest_isolate.spec import Defaults, SpecError, parse_seconds, parse_size
from pytest_isolate.untrusted.limits import (
    DEFAULT_TIMEOUT,
    Ceiling,
    parse_allow,
    parse_passed_env,
)
from pytest_isolate.untrusted.settings import SettingsVerdict
from pytest_isolate.untrusted.untrusted_session import UntrustedSession
from pytest_isolate.untrusted.untrusted_target import (
    UntrustedTarget,
    container_config,
    parse_target,
)


def read_ceiling(config: pytest.Config, backend: str) -> Ceiling:
    """The run's limits from the command line alone (ini values are the project's)."""
    timeout = parse_seconds(config.getoption("isolate_timeout"), "--isolate-timeout")
    return Ceiling(
        backend=backend,
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        mem_limit=parse_size(config.getoption("isolate_mem_limit"), "--isolate-mem-limit"),
        cpu_limit=parse_seconds(config.getoption("isolate_cpu_limit"), "--isolate-cpu-limit"),
        env=parse_passed_env(config.getoption("isolate_untrusted_env") or [], os.environ),
        allow=parse_allow(config.getoption("isolate_untrusted_allow", None)),
    )


def make_session(config: pytest.Config, verdict: SettingsVerdict | None) -> UntrustedSession:
    """The session plugin, or a usage error that says what to write instead."""
    from pytest_isolate.plugin import build_registry

    if config.getoption("no_isolate", False):
        raise pytest.UsageError(
            "pytest-isolate: --no-isolate and --isolate-untrusted exclude each other"
        )
    for option in ("isolate", "isolate_matrix"):
        if config.getoption(option, None):
            flag = "--" + option.replace("_", "-")
            raise pytest.UsageError(
                f"pytest-isolate: {flag} has no effect with --isolate-untrusted "
                "(every test runs in the untrusted target); drop it"
            )
    try:
        registry = build_registry(config)
        spec = parse_target(str(config.getoption("isolate_untrusted")), Defaults(), registry)
        ceiling = read_ceiling(config, spec.backend)
        if spec.backend == "container":
            container_config(spec, ceiling.mem_limit)  # a bad image name fails here
        elif spec.backend == "vm" and "network" in ceiling.allow:
            raise SpecError("--isolate-untrusted-allow=network: a vm target has no network device")
    except SpecError as exc:
        raise pytest.UsageError(f"pytest-isolate: {exc}") from None
    from pytest_isolate.supervision.context import BrokerContext

    limits = BrokerContext(config).limits
    target = UntrustedTarget(config, spec, ceiling.mem_limit, limits)
    ignored = verdict.ignored if verdict is not None else ()
    return UntrustedSession(target, ceiling, ignored)
