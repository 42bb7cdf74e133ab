"""The untrusted tests: checks shared by every target are collected from a helper module.

pytest rewrites asserts only in test modules and conftests; the shared checks
(``untrusted_option_checks``) are imported into each target's test module,
so they are registered here, before anything imports them.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("untrusted_option_checks")
