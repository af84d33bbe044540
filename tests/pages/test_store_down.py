"""An unreachable PostgreSQL store: every page says so in one line, without a traceback."""

from __future__ import annotations

import socket

import pytest

from tests.support.markup import shown

PAGES = ("app_pages/data.py", "app_pages/train.py", "app_pages/runs.py",
         "app_pages/evaluate.py", "app_pages/sweeps.py")


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("page", PAGES)
def test_an_unreachable_database_shows_one_line_on_every_page(app, monkeypatch, closed_port,
                                                               page):
    monkeypatch.setenv("TLCORE_DB_URL",
                       f"postgresql+psycopg://studio:s3cret@127.0.0.1:{closed_port}/runs")
    at = app(page)
    assert not at.exception, at.exception
    errors = [shown(e.value) for e in at.main.error]
    assert errors and errors[0].startswith(
        f"The run store at postgresql+psycopg://studio:***@127.0.0.1:{closed_port}/runs cannot "
        "be read or written")
    assert all("\n" not in e and "s3cret" not in e for e in errors)
