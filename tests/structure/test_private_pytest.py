"""Every use of pytest's private surface lives in ``pytest_compat``, the one place to adapt."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_isolate"

#: ``_pytest`` imports, and private attributes of pytest's objects as this
#: package names them (a config, an item, a session, a reporter, a factory).
PRIVATE = re.compile(
    r"(^\s*(from|import)\s+_pytest\b)"
    r"|\b(config|item|session|reporter|factory|capman|request)\._[a-z]\w*"
    r"|getattr\([^)]*\"_(global_capturing|tmp_path_factory|setupstate|tw)\""
)


def test_private_pytest_access_lives_in_pytest_compat_only() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "pytest_compat.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line) and "self._" not in line
    ]
    assert not found, "\n".join(found)
