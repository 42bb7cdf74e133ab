"""The command line and options of a spawned target's pytest: the broker's own configuration.

A container, a guest, a jail on a foreign root and untrusted mode each start
a fresh pytest (the agent). It must run with the configuration the broker
runs with, or results differ from a plain run without a word:

- what pytest reads while it parses (``-W``, ``-o``, the ini file, the import
  mode) goes on the agent's command line;
- every other option value, conftest-defined ones and other plugins' included,
  is sent as data (``StartRequest.options``) and set on the agent's
  ``config.option`` once it has parsed, as pytest-xdist does for its workers.

Left out: options that only the broker acts on (output files, distribution,
selection, the debugger, capture, our own), and values that are not JSON.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_isolate.backends.target_plugins import target_plugins

#: ``config.option`` names that belong to the broker's run, not to a test's.
BROKER_ONLY = frozenset(
    {
        # what to collect and where: the agent is given node ids and its rootdir
        "file_or_dir",
        "rootdir",
        "inifilename",
        "confcutdir",
        "keyword",
        "markexpr",
        "deselect",
        "ignore",
        "ignore_glob",
        "continue_on_collection_errors",
        "collectonly",
        "pyargs",
        "noconftest",
        # output files and the terminal: the broker writes them
        "basetemp",
        "xmlpath",
        "junitprefix",
        "reportchars",
        "verbose",
        "durations",
        "durations_min",
        "setuponly",
        "setupplan",
        "setupshow",
        "debug",
        "traceconfig",
        "pastebin",
        "help",
        "version",
        "showfixtures",
        "show_fixtures_per_test",
        "markers",
        "override_ini",
        "plugins",
        # run control and the cache: the broker decides
        "exitfirst",
        "maxfail",
        "lf",
        "last_failed_no_failures",
        "failedfirst",
        "newfirst",
        "cacheclear",
        "cacheshow",
        "stepwise",
        "stepwise_skip",
        # the debugger and capture: a target has no terminal
        "usepdb",
        "usepdb_cls",
        "trace",
        "capture",
        # pytest-benchmark and pytest-html: the broker writes their files
        "benchmark_save",
        "benchmark_autosave",
        "benchmark_save_data",
        "benchmark_json",
        "benchmark_compare",
        "benchmark_compare_fail",
        "benchmark_histogram",
        "benchmark_cprofile_dump",
        "htmlpath",
        # pytest-xdist: each worker is a broker
        "numprocesses",
        "maxprocesses",
        "dist",
        "tx",
        "rsyncdir",
        "rsyncignore",
        "looponfail",
        "maxworkerrestart",
        "maxschedchunk",
    }
)


def agent_base_args(config: pytest.Config, rootdir: str) -> list[str]:
    """The agent's pytest arguments before what to collect."""
    args = ["-p", "no:cacheprovider", "--rootdir", rootdir, "-p", "pytest_isolate.plugin"]
    if config.inipath is not None:
        args += ["-c", str(config.inipath)]
    import_mode = getattr(config.option, "importmode", None)
    if isinstance(import_mode, str):
        args.append(f"--import-mode={import_mode}")
    return (
        args
        + target_plugins(config).args()
        + parse_time_args(config)
        + matrix_args(config)
        + capture_args(config)
    )


def capture_args(config: pytest.Config) -> list[str]:
    """The broker's capture method, when it is not pytest's default ``fd``.

    Under ``-s`` (or ``sys``, ``tee-sys``) the agent captures as the broker
    does, and relays what reaches the test's descriptors as it comes.
    """
    method = getattr(config.option, "capture", "fd")
    return [] if method in (None, "fd") else [f"--capture={method}"]


def parse_time_args(config: pytest.Config) -> list[str]:
    """``-W`` and ``-o`` as given to the broker: pytest reads them while it parses."""
    args: list[str] = []
    for spec in getattr(config.known_args_namespace, "pythonwarnings", None) or ():
        args += ["-W", str(spec)]
    for override in getattr(config.option, "override_ini", None) or ():
        args += ["-o", str(override)]
    return args


def matrix_args(config: pytest.Config) -> list[str]:
    """The broker's ``--isolate`` and ``--isolate-matrix``: the agent's node ids carry them.

    Under a matrix the broker's node ids name the target (``test_x[vm-p0]``);
    the agent must parametrize its items the same way to find them.
    """
    args = []
    for option, flag in (("isolate", "--isolate"), ("isolate_matrix", "--isolate-matrix")):
        value = config.getoption(option, None)
        if isinstance(value, str):
            args.append(f"{flag}={value}")
    return args


def _json_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(
        item is None or isinstance(item, (bool, int, float, str)) for item in value
    )


def forwarded_options(config: pytest.Config) -> dict[str, Any]:
    """The broker's option values a target's pytest should see, as JSON data."""
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in sorted(vars(config.option).items())
        if name not in BROKER_ONLY and not name.startswith("isolate") and _json_value(value)
    }


def coverage_for_target() -> tuple[tuple[str, Any], ...] | None:
    """What the broker's running coverage measures, for a target to measure the same."""
    from pytest_isolate.target.coverage_probe import broker_coverage, coverage_settings

    running = broker_coverage()
    if running is None:
        return None
    settings = coverage_settings(running)
    return tuple(
        sorted(
            (name, list(value) if isinstance(value, (list, tuple)) else value)
            for name, value in settings.items()
        )
    )


def execution_count(item: pytest.Item) -> int | None:
    """pytest-rerunfailures' attempt number on the broker's item, for the agent's copy."""
    count = getattr(item, "execution_count", None)
    return count if isinstance(count, int) and not isinstance(count, bool) else None
