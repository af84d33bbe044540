"""What every table group of the run store stands on: connections, transactions, schema.

Each call opens its own short connection; a reader whose disk is too full (or
read-only) for SQLite's shared-memory file reads the database file alone. Every
multi-row write is one transaction, and any database error becomes a one-line
`StoreError`.

Claims are race-free: a write transaction on SQLite takes the database's write
lock at its start, so writers run one at a time; on PostgreSQL, the transactions
that count running runs, hand out GPU slots or number runs (`claim_next`,
`create_running`, `create_run`, `requeue`, and any write of a run's status or
`gpu`) first lock the queue's row in `tlcore_locks` (`SELECT ... FOR UPDATE`),
held until commit, and `merge_extra` locks its run's row. Schema upgrades, which
run before that table exists, take a transaction-scoped advisory lock instead.

The schema is versioned with Alembic (`tlcore/store/migrations/`, version table
`tlcore_schema_version`, apart from Optuna's `alembic_version` in the same
database). Opening a store upgrades an older database, once per process and
database; a database newer than this code is refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, inspect, select, text
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from tlcore.errors import StoreError
from tlcore.store.connection import DB_URL_ENV, WRITE_OPTION, database_url, engine
from tlcore.store.tables import QUEUE_LOCK, VERSION_TABLE, locks_table
from tlcore.workspace import Workspace

# The newest revision in migrations/versions: a store at it opens without Alembic.
SCHEMA_REVISION = "0004"
MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

# SQLite errors of opening a WAL database whose disk is full or read-only.
_NO_WAL_ERRORS = ("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_READONLY")
# The PostgreSQL advisory lock that schema upgrades take ("tlcore").
_LOCK_KEY = 0x746C636F7265

# (URL, SQLite file's inode) of the databases this process has brought to SCHEMA_REVISION.
_MIGRATED: set[tuple[str, int | None]] = set()


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic logs each step at INFO, which would land in a worker's run log."""
    log = logging.getLogger("alembic")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


class StoreBase:
    """The store's database: connections, transactions, locks and schema upgrades.

    Args:
        workspace: The workspace; default `Workspace.from_env()`. Its SQLite file
            holds the store unless TLCORE_DB_URL names another database.

    Raises:
        StoreError: when the database cannot be read or written, or its schema is
            newer than this code.
        ConfigError: when TLCORE_DB_URL is malformed.
    """

    def __init__(self, workspace: Workspace | None = None) -> None:
        self.ws = workspace or Workspace.from_env()
        self.url = database_url(self.ws)
        self._engine = engine(self.url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        parsed = make_url(self.url)
        # Where the store is, for messages: a file's path, or the URL without its password.
        self.location = (str(Path(parsed.database).absolute()) if self._sqlite
                         else parsed.render_as_string(hide_password=True))
        self._migrate()

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[Connection]:
        """A connection; any database error inside the block becomes a one-line StoreError.

        Args:
            write: Whether the block writes: it then runs in one transaction,
                committed at its end. A reader on a full (or read-only) disk falls
                back to reading the SQLite file alone.
        """
        try:
            try:
                con = self._engine.connect()
            except OperationalError as exc:
                # A full (or read-only) disk has no room for the WAL's shared-memory
                # file, which every normal connection needs; reads still work from
                # the database file alone (commits not yet checkpointed are not seen).
                errorname = getattr(exc.orig, "sqlite_errorname", None) or ""
                if write or not self._sqlite or not errorname.startswith(_NO_WAL_ERRORS):
                    raise
                con = engine(self.url, immutable=True).connect()
            with con:
                if not write:
                    yield con
                    return
                con.execution_options(**{WRITE_OPTION: True})
                with con.begin():
                    yield con
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    def _tx(self) -> AbstractContextManager[Connection]:
        """A write transaction (see `_connect`)."""
        return self._connect(write=True)

    def _error(self, exc: SQLAlchemyError) -> StoreError:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        if self._sqlite:
            advice = ("Check that it is a tlcore database, that no other program holds it "
                      "locked and that its disk has room; a store moved aside is replaced by "
                      "an empty one.")
        else:
            advice = ("Check that the PostgreSQL server is running and reachable, and that "
                      f"{DB_URL_ENV} names a database this user may read and write.")
        return StoreError(f"The run store at {self.location} cannot be read or written: "
                          f"{reason}. {advice}")

    def _lock(self, con: Connection) -> None:
        """Serialize claims on PostgreSQL (SQLite writers already hold the write lock)."""
        if not self._sqlite:
            con.execute(select(locks_table.c.name)
                        .where(locks_table.c.name == QUEUE_LOCK).with_for_update())

    def _upsert(self, table: Table, keys: tuple[str, ...], values: dict[str, Any]) -> Any:
        """INSERT, or on a key already there, replace the row's other columns."""
        dialect = sqlite_dialect if self._sqlite else pg_dialect
        stmt = dialect.insert(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={k: stmt.excluded[k] for k in values if k not in keys})

    def _migration_key(self) -> tuple[str, int | None]:
        if not self._sqlite:
            return self.url, None
        try:
            return self.url, os.stat(self.location).st_ino
        except OSError:
            return self.url, None

    def _migrate(self) -> None:
        """Bring the database to SCHEMA_REVISION, once per process (and SQLite file).

        Raises:
            StoreError: when the database's schema is newer than this code.
        """
        if self._migration_key() in _MIGRATED:
            return
        with self._connect() as con:
            stored = (con.execute(select(text("version_num"))
                                  .select_from(text(VERSION_TABLE))).scalars().all()
                      if inspect(con).has_table(VERSION_TABLE) else [])
        if stored != [SCHEMA_REVISION]:
            with self._tx() as con, _quiet_alembic():
                if not self._sqlite:
                    con.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
                self._upgrade(con)
        _MIGRATED.add(self._migration_key())

    def _upgrade(self, con: Connection) -> None:
        """Run the Alembic revisions the database lacks, in the caller's transaction."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        script = ScriptDirectory.from_config(config)
        known = {rev.revision for rev in script.walk_revisions()}
        stored = MigrationContext.configure(
            con, opts={"version_table": VERSION_TABLE}).get_current_heads()
        for revision in stored:
            if revision not in known:
                raise StoreError(
                    f"The run store at {self.location} has schema version {revision}, newer "
                    f"than this tlcore ({script.get_current_head()}): upgrade tlcore, or point "
                    f"{DB_URL_ENV} at another database.")
        config.attributes["connection"] = con
        command.upgrade(config, "head")
