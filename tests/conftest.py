"""Shared by every test directory: keep it small.

``pytester`` is enabled for the whole suite by ``-p pytester`` in pyproject's
addopts; helpers that only one area needs live in that area's conftest.
Being the rootdir's conftest, this file puts ``tests/`` on ``sys.path``
(pytest's default ``prepend`` import mode), so modules shared by every area,
such as ``project_runner``, import by their bare name, as each area's own
helpers do from its directory.
"""
