"""``python -m pytest_isolate.agent``: run the agent on this process's stdin/stdout."""

from __future__ import annotations

import sys

from pytest_isolate.agent.server import main

if __name__ == "__main__":
    sys.exit(main())
