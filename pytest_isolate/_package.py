"""Where this package is installed: spawned targets are given this directory to import it from."""

from __future__ import annotations

import os

#: The real path of the ``pytest_isolate`` directory (symbolic links resolved), for
#: a bind mount, a 9p share or an injected site directory.
PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
