"""Shared fixtures: every test gets its own workspace; nothing touches ./workspace."""

from __future__ import annotations

import gc
import shutil
from collections import namedtuple

import pytest
from streamlit import config as streamlit_config

from tests.support.adaptlab import lab_home  # noqa: F401  (one lab workspace per session)
from tests.support.pg import pg_cluster, pg_url  # noqa: F401  (fixtures for the PostgreSQL tests)
from tlcore.workspace import Workspace


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked slow run first (the order is otherwise kept).

    `make test`'s workers take the browser and Ray groups first (xdist orders groups
    by size), then single tests in this order: the long ones start early and short
    ones fill the end, so no worker finishes the run alone on a long test.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def young_heap() -> None:
    """Collect what earlier tests left, then keep the survivors out of later collections.

    Tests that build Keras models in the test process leave millions of long-lived
    objects (TensorFlow's and Keras's own); every later full collection scanned them
    all again, which made the page tests after them four times slower in a shared
    worker. Frozen objects are never scanned; each test's own garbage still is.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def no_warm_workers(monkeypatch) -> None:
    """No warm worker pool and no inference service unless a test asks for one (and stops
    it): runs start cold, pages predict through the CLI."""
    monkeypatch.setenv("TLCORE_WARM_WORKERS", "0")
    monkeypatch.setenv("TLCORE_INFER_SERVICE", "0")


@pytest.fixture(autouse=True)
def default_backend(monkeypatch) -> None:
    """Workers compute on the default backend (TensorFlow) unless a run's config names another."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)


@pytest.fixture(autouse=True)
def workspace_database(monkeypatch) -> None:
    """The store is the workspace's SQLite file unless a test asks for PostgreSQL (`pg_url`)."""
    monkeypatch.delenv("TLCORE_DB_URL", raising=False)


@pytest.fixture(autouse=True)
def local_executor(monkeypatch) -> None:
    """Runs train in local workers, with the machine's own GPUs (none here) as slots."""
    monkeypatch.delenv("TLCORE_EXECUTOR", raising=False)
    monkeypatch.delenv("TLCORE_GPUS", raising=False)


@pytest.fixture(autouse=True)
def no_run_limit(monkeypatch) -> None:
    """No per-user run limit unless a test sets one."""
    monkeypatch.delenv("TLCORE_MAX_RUNS_PER_USER", raising=False)


@pytest.fixture
def trusted_headers():
    """`server.trustedUserHeaders` as a company proxy's deployment sets it; restored after."""
    before = streamlit_config.get_option("server.trustedUserHeaders")
    streamlit_config.set_option("server.trustedUserHeaders", {"X-Forwarded-Email": "email"})
    yield
    streamlit_config.set_option("server.trustedUserHeaders", before)


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Workspace:
    """A fresh workspace in a temp dir, also exported as TLCORE_HOME for subprocesses."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("TLCORE_HOME", str(home))
    monkeypatch.setenv("TLCORE_MAX_WORKERS", "1")
    return Workspace.from_env(home)


DiskUsage = namedtuple("DiskUsage", "total used free")


@pytest.fixture
def full_disk(monkeypatch) -> None:
    """Every disk reports 5 MB free: below the 200 MB that large writes keep free."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(10**12, 10**12, 5 * 10**6))
