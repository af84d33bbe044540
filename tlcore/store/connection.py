"""Where the run store lives and how to reach it: the database URL and one Engine per URL.

The database is the workspace's SQLite file (`<workspace>/tlcore.db`, the default)
or the PostgreSQL database that `TLCORE_DB_URL` names
(`postgresql+psycopg://user:password@host/db`); `database_url(ws)` says which. The
store speaks SQLAlchemy Core, one Engine per database URL per process.

SQLite runs in WAL mode (one writer and many readers at once; a crash mid-write
leaves it readable) with `synchronous=NORMAL` and a 30 s busy timeout. Each call
opens its own short connection, so the store is safe across threads (Streamlit)
and processes (workers). A write transaction takes the database's write lock at
its start (`BEGIN IMMEDIATE`), so writers run one at a time. PostgreSQL
connections come from a pool per process.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from tlcore.errors import ConfigError
from tlcore.workspace import Workspace

DB_URL_ENV = "TLCORE_DB_URL"
# As long as SQLite's busy timeout below: how long a new database may stay locked.
WAL_SWITCH_TIMEOUT_S = 30.0

# The execution option that marks a write connection (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "tlcore_write"

_ENGINES: dict[tuple[str, bool], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _masked(text: str) -> str:
    """A URL that did not parse, with anything between `user:` and `@` hidden."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)


def _use_wal(con: sqlite3.Connection) -> None:
    """Put the database in WAL mode, once: the mode is kept in the file.

    Switching needs the database to itself, and SQLite answers "database is locked"
    at once, without waiting, while another process opens or upgrades a new store;
    so a new database is switched with retries for as long as the busy timeout.
    """
    deadline = time.monotonic() + WAL_SWITCH_TIMEOUT_S
    while True:
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def database_url(ws: Workspace) -> str:
    """The run store's database URL: `$TLCORE_DB_URL`, else the workspace's SQLite file.

    `postgresql://` stands for `postgresql+psycopg://` (the driver tlcore installs).

    Raises:
        ConfigError: when TLCORE_DB_URL is not a SQLite file or PostgreSQL URL.
    """
    value = os.environ.get(DB_URL_ENV, "").strip()
    if not value:
        return f"sqlite:///{ws.db_path}"
    allowed = ("TLCORE_DB_URL must be sqlite:///<path to a file> or "
               "postgresql+psycopg://user:password@host:port/database.")
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(f"{allowed} Received: {_masked(value)!r}") from None
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if (url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")
            or (url.get_backend_name() == "sqlite" and not url.database)
            or url.database == ":memory:"):
        raise ConfigError(f"{allowed} Received: {url.render_as_string(hide_password=True)!r}")
    return url.render_as_string(hide_password=False)


def _sqlite_engine(url: URL, immutable: bool) -> Engine:
    """An engine on a SQLite file: WAL, short connections, BEGIN IMMEDIATE for writes.

    Args:
        url: The file's URL.
        immutable: Read the database file alone (`?immutable=1`), for a reader whose
            disk has no room for the WAL's shared-memory file.
    """
    path = Path(url.database).absolute()

    def connect() -> sqlite3.Connection:
        # isolation_level=None: pysqlite emits no BEGIN of its own; the "begin" event does.
        if immutable:
            con = sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True, timeout=30.0,
                                  isolation_level=None, check_same_thread=False)
        else:
            con = sqlite3.connect(path, timeout=30.0, isolation_level=None,
                                  check_same_thread=False)
        try:
            if not immutable:
                _use_wal(con)
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=30000")
        except BaseException:
            con.close()
            raise
        return con

    engine = create_engine(url, creator=connect, poolclass=NullPool)

    @event.listens_for(engine, "begin")
    def begin(conn: Connection) -> None:
        # A writer takes the write lock now, not at its first write, so what it read
        # (how many runs are running, the next seq) still holds when it writes.
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def engine(url: str, immutable: bool = False) -> Engine:
    """The process's Engine for a database URL (created on first use)."""
    key = (url, immutable)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                _ENGINES[key] = _sqlite_engine(parsed, immutable)
            else:
                # A server that does not answer is reported, not waited on forever.
                connect_args = {} if "connect_timeout" in parsed.query else {
                    "connect_timeout": 10}
                _ENGINES[key] = create_engine(parsed, pool_pre_ping=True,
                                              connect_args=connect_args)
        return _ENGINES[key]
