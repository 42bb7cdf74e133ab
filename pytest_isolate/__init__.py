"""pytest-isolate: run marked tests inside isolated targets and bring the results back.

``isolate`` is ``pytest.mark.isolate``::

    from pytest_isolate import isolate

    @isolate("seccomp", timeout=5)
    def test_parser_on_hostile_input(): ...
"""

from __future__ import annotations

import pytest

from pytest_isolate._version import __version__

isolate = pytest.mark.isolate

__all__ = ["__version__", "isolate"]
