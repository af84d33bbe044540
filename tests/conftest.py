"""Shared fixtures: every test gets its own workspace; nothing touches ./workspace."""

from __future__ import annotations

import pytest

from tlcore.workspace import Workspace


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Workspace:
    """A fresh workspace in a temp dir, also exported as TLCORE_HOME for subprocesses."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("TLCORE_HOME", str(home))
    monkeypatch.setenv("TLCORE_MAX_WORKERS", "1")
    return Workspace.from_env(home)
