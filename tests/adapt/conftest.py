"""Fixtures of the adaptation tests (the shared lab workspace: tests/support/adaptlab.py)."""

from tests.support.adaptlab import lab, shifted  # noqa: F401  (fixtures)
