"""``python -P -m pytest_isolate.untrusted --isolate-untrusted=TARGET [pytest args]``.

The front door of untrusted mode. Pytest applies the project's ``addopts``,
``pythonpath`` and ``filterwarnings`` while parsing the command line, before
any installed plugin can act; this entry point puts ``-o KEY=`` overrides for
them in front of the arguments, so they are never applied in the broker
(the user's own ``-o`` still win). ``-P`` keeps Python from putting the
current directory (the untrusted checkout) on the import path, where a file
named like any module the broker imports would be run instead of it.
"""

from __future__ import annotations

import sys

from pytest_isolate.untrusted.settings import front_door_args

USAGE = (
    "usage: python -P -m pytest_isolate.untrusted --isolate-untrusted=container:IMAGE "
    "[pytest options] [paths]"
)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--isolate-untrusted" or a.startswith("--isolate-untrusted=") for a in args):
        sys.stderr.write(USAGE + "\n")
        return 4
    if not sys.flags.safe_path:
        # The checkout may be on sys.path[0]; drop it (modules already imported stay ours:
        # only this package and the standard library were imported so far).
        sys.path[:] = [p for p in sys.path if p not in ("", ".") and not p.endswith("/.")]
        import os

        cwd = os.getcwd()
        sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(cwd)]
    import pytest

    return int(pytest.main(front_door_args(args)))


if __name__ == "__main__":
    sys.exit(main())
