"""Shared by every test directory: keep it small.

``pytester`` is enabled for the whole suite by ``-p pytester`` in pyproject's
addopts; helpers that only one area needs live in that area's conftest.
"""
