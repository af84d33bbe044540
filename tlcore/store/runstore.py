"""RunStore: the database shared by the UI, the CLI and the workers.

The database is the workspace's SQLite file (`<workspace>/tlcore.db`, the default)
or the PostgreSQL database that `TLCORE_DB_URL` names
(`postgresql+psycopg://user:password@host/db`); `database_url(ws)` says which. The
store speaks SQLAlchemy Core, one Engine per database URL per process.

SQLite runs in WAL mode (one writer and many readers at once; a crash mid-write
leaves it readable) with `synchronous=NORMAL` and a 30 s busy timeout. Each call
opens its own short connection, so the store is safe across threads (Streamlit)
and processes (workers); a reader whose disk is too full (or read-only) for the
WAL's shared-memory file reads the database file alone. PostgreSQL connections
come from a pool per process.

Every multi-row write is one transaction. Claims are race-free: a write
transaction on SQLite takes the database's write lock at its start (`BEGIN
IMMEDIATE`), so writers run one at a time; on PostgreSQL, the transactions that
count running runs, hand out GPU slots or number runs (`claim_next`,
`create_running`, `create_run`, `requeue`, and any write of a run's status or
`gpu`) first lock the queue's row in `tlcore_locks` (`SELECT ... FOR UPDATE`),
held until commit, and `merge_extra` locks its run's row. Schema upgrades, which
run before that table exists, take a transaction-scoped advisory lock instead.

The schema is versioned with Alembic (`tlcore/migrations/`, version table
`tlcore_schema_version`, apart from Optuna's `alembic_version` in the same
database). Opening a store upgrades an older database, once per process and
database; a database newer than this code is refused.

Tables (names are constants):
    datasets  one row per imported dataset (summary for fast listing, owner)
    runs      one row per run: config, status, timestamps, device, GPU slot, error,
              best metrics, owner, tags, note
    metrics   one row per (run, epoch): loss, accuracy, val_*, learning rate, phase, time
    progress  one row per run: position inside the current epoch, ETA
    tlcore_locks  one row ("queue") that claims lock on PostgreSQL

Owners: `owner` is the id (an email) of the signed-in user who created a dataset or
run; None is the local operator (the CLI, or a studio without login), as on every
row written before owners were recorded. `tlcore.auth` decides who may do what.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypedDict

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from tlcore.config import RunConfig
from tlcore.errors import ConfigError, NotFoundError, StoreError
from tlcore.workspace import Workspace, check_run_id, check_run_name

DB_URL_ENV = "TLCORE_DB_URL"

DATASETS_TABLE = "datasets"
RUNS_TABLE = "runs"
METRICS_TABLE = "metrics"
PROGRESS_TABLE = "progress"
LOCKS_TABLE = "tlcore_locks"
VERSION_TABLE = "tlcore_schema_version"

# The newest revision in tlcore/migrations/versions: a store at it opens without Alembic.
SCHEMA_REVISION = "0003"
MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, LOST = (
    "queued", "running", "completed", "failed", "cancelled", "lost")
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, LOST)
ACTIVE_STATUSES = (QUEUED, RUNNING)
FINAL_STATUSES = (COMPLETED, FAILED, CANCELLED, LOST)

STAGE_TRAIN, STAGE_FEATURES = "train", "features"

METRIC_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time")

MAX_TAGS = 20
MAX_TAG_CHARS = 32
MAX_NOTE_CHARS = 2000
_TAG = re.compile(r"[a-z0-9_.:-]+")

metadata = MetaData()
datasets_table = Table(
    DATASETS_TABLE, metadata,
    Column("name", Text, primary_key=True),
    Column("created", Float, nullable=False),
    Column("n_images", Integer, nullable=False),
    Column("classes", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("owner", Text),
)
runs_table = Table(
    RUNS_TABLE, metadata,
    Column("id", Text, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("dataset", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("started", Float),
    Column("ended", Float),
    Column("device", Text),
    Column("error", Text),
    Column("pid", Integer),
    Column("heartbeat", Float),
    Column("cancel_requested", Integer, nullable=False, server_default="0"),
    Column("best_val_accuracy", Float),
    Column("best_val_loss", Float),
    Column("best_epoch", Integer),
    Column("test_metrics", Text),
    Column("extra", Text),
    Column("gpu", Text),
    Column("owner", Text),
    Column("tags", Text),
    Column("note", Text),
    Index("runs_status", "status", "seq"),
)
metrics_table = Table(
    METRICS_TABLE, metadata,
    Column("run_id", Text, primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("phase", Integer, nullable=False),
    *(Column(name, Float) for name in METRIC_COLUMNS),
)
locks_table = Table(
    LOCKS_TABLE, metadata,
    Column("name", Text, primary_key=True),
)
progress_table = Table(
    PROGRESS_TABLE, metadata,
    Column("run_id", Text, primary_key=True),
    *(Column(name, Integer) for name in ("phase", "epoch", "epochs", "batch", "batches")),
    Column("eta_s", Float),
    Column("updated", Float),
    Column("stage", Text, nullable=False, server_default=STAGE_TRAIN),
)


class DatasetRecord(TypedDict):
    """One imported dataset, as `list_datasets` returns it."""

    name: str
    created: float
    n_images: int
    classes: list[str]
    summary: dict[str, Any]
    owner: str | None  # the user who imported it; None: the local operator


class RunRecord(TypedDict):
    """One run, as `get_run` and `list_runs` return it."""

    id: str
    seq: int
    name: str
    dataset: str
    config: dict[str, Any]  # parsed, keys added since the run was stored at their defaults
    status: str
    created: float
    started: float | None
    ended: float | None
    device: str | None
    error: str | None
    pid: int | None
    heartbeat: float | None
    cancel_requested: bool
    best_val_accuracy: float | None
    best_val_loss: float | None
    best_epoch: int | None
    test_metrics: dict[str, Any] | None
    extra: dict[str, Any] | None
    gpu: str | None  # the CUDA_VISIBLE_DEVICES value the run holds (or held) while running
    owner: str | None  # the user who launched it; None: the local operator
    tags: list[str]  # sorted, lower-case; [] when none
    note: str | None


class EpochRecord(TypedDict):
    """One epoch's metrics of a run (a metric a run does not report is None)."""

    run_id: str
    epoch: int
    phase: int
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float | None
    epoch_time: float | None


class ProgressRecord(TypedDict):
    """A run's position inside its current epoch (or feature pass, see `stage`)."""

    run_id: str
    phase: int | None
    epoch: int | None
    epochs: int | None
    batch: int | None
    batches: int | None
    eta_s: float | None
    updated: float | None
    stage: str


# SQLite errors of opening a WAL database whose disk is full or read-only.
_NO_WAL_ERRORS = ("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_READONLY")

# The execution option that marks a write connection (SQLite: BEGIN IMMEDIATE).
_WRITE = "tlcore_write"
# The PostgreSQL advisory lock that schema upgrades take ("tlcore").
_LOCK_KEY = 0x746C636F7265
# The row of `tlcore_locks` that claims and run numbering lock on PostgreSQL.
QUEUE_LOCK = "queue"

_JSON_RUN_FIELDS = ("test_metrics", "extra")
_UPDATABLE_RUN_FIELDS = {
    "name", "status", "started", "ended", "device", "error", "pid", "heartbeat",
    "cancel_requested", "best_val_accuracy", "best_val_loss", "best_epoch",
    "test_metrics", "extra", "gpu",
}
# Writes of these fields take the claim lock, so limits and slots hold on PostgreSQL.
_LOCKING_RUN_FIELDS = {"status", "gpu"}

_ENGINES: dict[tuple[str, bool], Engine] = {}
_ENGINES_LOCK = threading.Lock()
# (URL, SQLite file's inode) of the databases this process has brought to SCHEMA_REVISION.
_MIGRATED: set[tuple[str, int | None]] = set()


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
    except ArgumentError:
        raise ConfigError(f"{allowed} Received: {value!r}") from None
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
                con.execute("PRAGMA journal_mode=WAL")
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
        if conn.get_execution_options().get(_WRITE):
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


def _encode_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Check run column names and status; return the values to store (dicts as JSON).

    Raises:
        ConfigError: on an unknown column or status.
    """
    bad = set(fields) - _UPDATABLE_RUN_FIELDS
    if bad:
        raise ConfigError(f"Unknown run field(s) {sorted(bad)}. Allowed: "
                          f"{sorted(_UPDATABLE_RUN_FIELDS)}")
    if "status" in fields and fields["status"] not in STATUSES:
        raise ConfigError(f"status must be one of {', '.join(STATUSES)}. "
                          f"Received: status={fields['status']!r}")
    values = {k: json.dumps(v) if k in _JSON_RUN_FIELDS and v is not None else v
              for k, v in fields.items()}
    if values.get("cancel_requested") is not None:
        # PostgreSQL refuses a boolean in an integer column.
        values["cancel_requested"] = int(values["cancel_requested"])
    return values


def _check_slots(slots: Iterable[str], fields: dict[str, Any]) -> tuple[str, ...]:
    slots = tuple(slots)
    if slots and "gpu" in fields:
        raise ConfigError(f"Give slots or gpu, not both. Received: slots={slots!r}, "
                          f"gpu={fields['gpu']!r}")
    return slots


def _free_slot(con: Connection, max_running: int, slots: tuple[str, ...]
               ) -> tuple[bool, str | None]:
    """Whether one more run may start (inside the caller's locked transaction).

    Returns:
        (True, the first slot in `slots` no running run holds, or None without slots),
        or (False, None) when `max_running` runs are running or every slot is held.
    """
    held = con.execute(select(runs_table.c.gpu)
                       .where(runs_table.c.status == RUNNING)).scalars().all()
    if len(held) >= max_running:
        return False, None
    if not slots:
        return True, None
    gpu = next((slot for slot in slots if slot not in held), None)
    return gpu is not None, gpu


def _next_seq(con: Connection) -> int:
    return con.execute(select(func.coalesce(func.max(runs_table.c.seq), 0) + 1)).scalar_one()


def _run_row(row: Any) -> RunRecord:
    out = dict(row)
    out["config"] = json.loads(out["config"])
    try:
        # Keys added since the run was stored read as their defaults, so old and new
        # runs compare on equal terms (e.g. `base.trainable`).
        out["config"] = RunConfig.from_dict(out["config"]).to_dict()
    except ConfigError:
        pass  # shown as stored; `get_config` reports what is wrong with it
    for key in _JSON_RUN_FIELDS:
        out[key] = json.loads(out[key]) if out[key] else None
    out["cancel_requested"] = bool(out["cancel_requested"])
    out["tags"] = json.loads(out["tags"]) if out["tags"] else []
    return out  # type: ignore[return-value]


def _dataset_row(row: Any) -> DatasetRecord:
    out = dict(row)
    out["classes"] = json.loads(out["classes"])
    out["summary"] = json.loads(out["summary"])
    return out  # type: ignore[return-value]


def check_tags(tags: Iterable[str]) -> list[str]:
    """Normalize a run's tags: stripped, lower-cased, de-duplicated and sorted.

    Raises:
        ConfigError: when a tag is empty, longer than MAX_TAG_CHARS or has characters
            other than letters, digits and `-_.:`, or there are more than MAX_TAGS.
    """
    if isinstance(tags, str):
        raise ConfigError(f"tags must be a list of strings. Received: tags={tags!r}")
    out = set()
    for tag in tags:
        clean = tag.strip().lower() if isinstance(tag, str) else None
        if not clean or len(clean) > MAX_TAG_CHARS or not _TAG.fullmatch(clean):
            raise ConfigError(f"A tag must be 1-{MAX_TAG_CHARS} letters, digits or -_.: "
                              f"characters. Received: {tag!r}")
        out.add(clean)
    if len(out) > MAX_TAGS:
        raise ConfigError(f"A run may have at most {MAX_TAGS} tags. Received: {len(out)}")
    return sorted(out)


def check_note(note: str | None) -> str | None:
    """A run's note as stored: None for no note (or only whitespace), else the text.

    Raises:
        ConfigError: when the note is not text or longer than MAX_NOTE_CHARS.
    """
    if note is None:
        return None
    if not isinstance(note, str):
        raise ConfigError(f"A note must be text. Received: {type(note).__name__}")
    if len(note) > MAX_NOTE_CHARS:
        raise ConfigError(f"A note may have at most {MAX_NOTE_CHARS} characters. "
                          f"Received: {len(note)}")
    return note if note.strip() else None


def _active(con: Connection, owner: str | None) -> int:
    """How many runs of `owner` are queued or running (inside the caller's transaction)."""
    who = runs_table.c.owner.is_(None) if owner is None else runs_table.c.owner == owner
    return con.execute(select(func.count()).select_from(runs_table).where(
        who, runs_table.c.status.in_(ACTIVE_STATUSES))).scalar_one()


def new_run_id() -> str:
    """A fresh 12-character run id."""
    return uuid.uuid4().hex[:12]


class RunStore:
    """Datasets, runs, metrics and progress in the workspace's database.

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

    # ---- plumbing -----------------------------------------------------
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
                con.execution_options(**{_WRITE: True})
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

    # ---- datasets -----------------------------------------------------
    def add_dataset(self, name: str, n_images: int, classes: list[str],
                    summary: dict[str, Any], owner: str | None = None) -> None:
        """Record an imported dataset (its folder must already be in place).

        Args:
            owner: The user who imported it; None: the local operator.
        """
        with self._tx() as con:
            con.execute(insert(datasets_table).values(
                name=name, created=time.time(), n_images=n_images,
                classes=json.dumps(classes), summary=json.dumps(summary), owner=owner))

    def list_datasets(self) -> list[DatasetRecord]:
        """All datasets, newest first: name, created, n_images, classes, summary, owner."""
        with self._connect() as con:
            rows = con.execute(select(datasets_table)
                               .order_by(datasets_table.c.created.desc())).mappings().all()
        return [_dataset_row(r) for r in rows]

    def has_dataset(self, name: str) -> bool:
        with self._connect() as con:
            return con.execute(select(datasets_table.c.name)
                               .where(datasets_table.c.name == name)).first() is not None

    def delete_dataset(self, name: str) -> None:
        with self._tx() as con:
            con.execute(delete(datasets_table).where(datasets_table.c.name == name))

    # ---- runs ---------------------------------------------------------
    def dataset_owner(self, name: str) -> str | None:
        """The user who imported dataset `name` (None: the local operator).

        Raises:
            NotFoundError: when the store has no such dataset.
        """
        with self._connect() as con:
            row = con.execute(select(datasets_table.c.owner)
                              .where(datasets_table.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"No dataset named {name!r}; `python -m tlcore datasets list` "
                                f"shows existing datasets.")
        return row[0]

    def create_run(self, config: RunConfig, name: str | None = None,
                   status: str = QUEUED, owner: str | None = None,
                   max_active: int | None = None) -> str | None:
        """Insert a new run and return its id. The config is stored as JSON, never mutated.

        Args:
            config: The run config.
            name: A display name; default `run-<n>`.
            status: Its first status.
            owner: The user who launched it; None: the local operator.
            max_active: The most queued and running runs `owner` may have; counting and
                inserting are one transaction, so two launches at once cannot both take
                the last place. None: no limit.

        Returns:
            The new run's id, or None when `owner` already has `max_active` active runs.
        """
        ids = self.create_runs([(config, name)], status=status, owner=owner,
                               max_active=max_active)
        return ids[0] if ids else None

    def create_runs(self, runs: Sequence[tuple[RunConfig, str | None]], status: str = QUEUED,
                    owner: str | None = None,
                    max_active: int | None = None) -> list[str] | None:
        """Insert several runs in one transaction (all or none), as `create_run` does one.

        Args:
            runs: `(config, name)` pairs; a None name is `run-<n>`.
            status, owner: As `create_run`, for every run.
            max_active: The most queued and running runs `owner` may have, these
                included; None: no limit.

        Returns:
            The new runs' ids in the order given, or None (nothing inserted) when they
            would take `owner` past `max_active`.
        """
        for config, _ in runs:
            if not isinstance(config, RunConfig):
                raise ConfigError(f"create_run needs a RunConfig. Received: "
                                  f"{type(config).__name__}")
        ids = [new_run_id() for _ in runs]
        with self._tx() as con:
            self._lock(con)
            if max_active is not None and _active(con, owner) + len(runs) > max_active:
                return None
            for run_id, (config, name) in zip(ids, runs, strict=True):
                seq = _next_seq(con)
                con.execute(insert(runs_table).values(
                    id=run_id, seq=seq, name=name or f"run-{seq}", dataset=config.dataset,
                    config=config.to_json(None), status=status, created=time.time(),
                    owner=owner))
        return ids

    def create_running(self, config: RunConfig, max_running: int, name: str | None = None,
                       slots: Iterable[str] = (), owner: str | None = None,
                       **fields: Any) -> str | None:
        """Insert a new run already running, if fewer than `max_running` runs are running.

        For a process that trains the run itself (a sweep worker): counting and
        inserting happen in one transaction, as in `claim_next`, so the worker limit
        and the GPU slots hold for sweeps and queued runs together.

        Args:
            config: The run config.
            max_running: The most runs that may be running at once.
            name: A display name; default `run-<n>`.
            slots: GPU slots (CUDA_VISIBLE_DEVICES values). When given, the run takes
                the first one no running run holds (its `gpu`), and none is created
                while every slot is held.
            owner: The user it runs for; None: the local operator.
            **fields: Columns to set (e.g. `pid`, `started`, `heartbeat`).

        Returns:
            The new run's id, or None when no slot is free.
        """
        values = _encode_fields(fields)
        slots = _check_slots(slots, fields)
        run_id = new_run_id()
        with self._tx() as con:
            self._lock(con)
            free, gpu = _free_slot(con, max_running, slots)
            if not free:
                return None
            if gpu is not None:
                values["gpu"] = gpu
            seq = _next_seq(con)
            con.execute(insert(runs_table).values(
                id=run_id, seq=seq, name=name or f"run-{seq}", dataset=config.dataset,
                config=config.to_json(None), status=RUNNING, created=time.time(), owner=owner,
                **values))
        return run_id

    def get_run(self, run_id: str) -> RunRecord:
        """One run (config parsed to a dict). Raises NotFoundError."""
        check_run_id(run_id)
        with self._connect() as con:
            row = con.execute(select(runs_table)
                              .where(runs_table.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFoundError(
                f"No run with id {run_id!r}; `python -m tlcore runs list` shows existing runs.")
        return _run_row(row)

    def get_config(self, run_id: str) -> RunConfig:
        return RunConfig.from_dict(self.get_run(run_id)["config"])

    def list_runs(self, dataset: str | None = None,
                  statuses: tuple[str, ...] | list[str] | None = None,
                  owner: str | None = None) -> list[RunRecord]:
        """Runs in creation order (oldest first), optionally filtered.

        Args:
            dataset: Only the runs on this dataset.
            statuses: Only the runs in one of these statuses.
            owner: Only this user's runs (None: everyone's, the operator's included).
        """
        query = select(runs_table).order_by(runs_table.c.seq)
        if dataset is not None:
            query = query.where(runs_table.c.dataset == dataset)
        if owner is not None:
            query = query.where(runs_table.c.owner == owner)
        if statuses:
            query = query.where(runs_table.c.status.in_(statuses))
        with self._connect() as con:
            rows = con.execute(query).mappings().all()
        return [_run_row(r) for r in rows]

    def count_active(self, owner: str | None) -> int:
        """How many runs of `owner` are queued or running (None: the operator's)."""
        with self._connect() as con:
            return _active(con, owner)

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run (see `_UPDATABLE_RUN_FIELDS`); dict values are stored as JSON."""
        values = _encode_fields(fields)
        with self._tx() as con:
            if _LOCKING_RUN_FIELDS & set(fields):
                self._lock(con)
            result = con.execute(update(runs_table).where(runs_table.c.id == run_id)
                                 .values(**values))
            if result.rowcount == 0:
                raise NotFoundError(f"No run with id {run_id!r}.")

    def transition(self, run_id: str, from_statuses: tuple[str, ...], **fields: Any) -> bool:
        """Update a run only if its status is in `from_statuses` (atomic compare-and-set).

        Returns:
            True when the row was updated.
        """
        values = _encode_fields(fields)
        with self._tx() as con:
            if _LOCKING_RUN_FIELDS & set(fields):
                self._lock(con)
            result = con.execute(
                update(runs_table)
                .where(runs_table.c.id == run_id, runs_table.c.status.in_(from_statuses))
                .values(**values))
            return result.rowcount == 1

    def claim_next(self, max_running: int, slots: Iterable[str] = (),
                   **fields: Any) -> str | None:
        """Move the oldest queued run to running if fewer than `max_running` runs are running.

        Counting and claiming happen in one transaction, so two processes starting
        queued runs at once never exceed the limit, start the same run twice or
        hand out the same slot twice.

        Args:
            max_running: The most runs that may be running at once.
            slots: GPU slots (CUDA_VISIBLE_DEVICES values). When given, the claimed
                run takes the first one no running run holds (its `gpu`), and nothing
                is claimed while every slot is held.
            **fields: Columns to set on the claimed run (e.g. `started`, `heartbeat`).

        Returns:
            The claimed run's id, or None when no slot is free or nothing is queued.
        """
        values = _encode_fields(fields)
        slots = _check_slots(slots, fields)
        with self._tx() as con:
            self._lock(con)
            free, gpu = _free_slot(con, max_running, slots)
            if not free:
                return None
            run_id = con.execute(select(runs_table.c.id).where(runs_table.c.status == QUEUED)
                                 .order_by(runs_table.c.seq).limit(1)).scalar()
            if run_id is None:
                return None
            if gpu is not None:
                values["gpu"] = gpu
            con.execute(update(runs_table).where(runs_table.c.id == run_id)
                        .values(status=RUNNING, **values))
            return run_id

    def requeue(self, run_id: str, from_statuses: tuple[str, ...], **fields: Any) -> bool:
        """Put a run back at the end of the queue if its status is in `from_statuses`.

        Returns:
            True when the run was requeued (atomic compare-and-set, like `transition`).
        """
        values = _encode_fields(fields)
        last = select(func.max(runs_table.c.seq) + 1).scalar_subquery()
        with self._tx() as con:
            self._lock(con)
            result = con.execute(
                update(runs_table)
                .where(runs_table.c.id == run_id, runs_table.c.status.in_(from_statuses))
                .values(status=QUEUED, seq=last, **values))
            return result.rowcount == 1

    def merge_extra(self, run_id: str, **values: Any) -> dict[str, Any]:
        """Merge `values` into a run's `extra` JSON object in one transaction; return it."""
        with self._tx() as con:
            query = select(runs_table.c.extra).where(runs_table.c.id == run_id)
            row = con.execute(query if self._sqlite else query.with_for_update()).first()
            if row is None:
                raise NotFoundError(f"No run with id {run_id!r}.")
            extra = json.loads(row[0]) if row[0] else {}
            extra.update(values)
            con.execute(update(runs_table).where(runs_table.c.id == run_id)
                        .values(extra=json.dumps(extra)))
        return extra

    def rename_run(self, run_id: str, name: str) -> None:
        self.update_run(run_id, name=check_run_name(name))

    def set_tags(self, run_id: str, tags: Iterable[str]) -> list[str]:
        """Replace a run's tags (see `check_tags`); returns them as stored.

        Raises:
            ConfigError: on a bad tag or too many.
            NotFoundError: when there is no such run.
        """
        clean = check_tags(tags)
        self._set_run_text(run_id, tags=json.dumps(clean) if clean else None)
        return clean

    def set_note(self, run_id: str, note: str | None) -> str | None:
        """Replace a run's note (None or blank removes it); returns it as stored.

        Raises:
            ConfigError: when the note is too long.
            NotFoundError: when there is no such run.
        """
        clean = check_note(note)
        self._set_run_text(run_id, note=clean)
        return clean

    def _set_run_text(self, run_id: str, **values: str | None) -> None:
        check_run_id(run_id)
        with self._tx() as con:
            result = con.execute(update(runs_table).where(runs_table.c.id == run_id)
                                 .values(**values))
            if result.rowcount == 0:
                raise NotFoundError(f"No run with id {run_id!r}.")

    def delete_run(self, run_id: str) -> None:
        """Remove a run's rows (the caller removes its folder)."""
        with self._tx() as con:
            con.execute(delete(metrics_table).where(metrics_table.c.run_id == run_id))
            con.execute(delete(progress_table).where(progress_table.c.run_id == run_id))
            con.execute(delete(runs_table).where(runs_table.c.id == run_id))

    def request_cancel(self, run_id: str) -> None:
        self.update_run(run_id, cancel_requested=1)

    def cancel_requested(self, run_id: str) -> bool:
        with self._connect() as con:
            flag = con.execute(select(runs_table.c.cancel_requested)
                               .where(runs_table.c.id == run_id)).scalar()
        return bool(flag)

    def heartbeat(self, run_id: str) -> None:
        self.update_run(run_id, heartbeat=time.time())

    # ---- metrics and progress ----------------------------------------
    def add_epoch(self, run_id: str, epoch: int, phase: int, metrics: dict[str, float]) -> None:
        """Record (or replace, on resume) one epoch's metrics."""
        values = {"run_id": run_id, "epoch": epoch, "phase": phase,
                  **{c: metrics.get(c) for c in METRIC_COLUMNS}}
        with self._tx() as con:
            con.execute(self._upsert(metrics_table, ("run_id", "epoch"), values))

    def metrics(self, run_id: str) -> list[EpochRecord]:
        """Per-epoch metrics of a run, in epoch order."""
        with self._connect() as con:
            rows = con.execute(select(metrics_table).where(metrics_table.c.run_id == run_id)
                               .order_by(metrics_table.c.epoch)).mappings().all()
        return [dict(r) for r in rows]  # type: ignore[misc]

    def metrics_for(self, run_ids: list[str]) -> list[EpochRecord]:
        """Per-epoch metrics of several runs (one query), ordered by run then epoch."""
        if not run_ids:
            return []
        with self._connect() as con:
            rows = con.execute(
                select(metrics_table).where(metrics_table.c.run_id.in_(run_ids))
                .order_by(metrics_table.c.run_id, metrics_table.c.epoch)).mappings().all()
        return [dict(r) for r in rows]  # type: ignore[misc]

    def truncate_metrics(self, run_id: str, after_epoch: int) -> None:
        """Drop epochs after `after_epoch` (used when resuming from a checkpoint)."""
        with self._tx() as con:
            con.execute(delete(metrics_table).where(metrics_table.c.run_id == run_id,
                                                    metrics_table.c.epoch > after_epoch))

    def set_progress(self, run_id: str, *, phase: int, epoch: int, epochs: int, batch: int,
                     batches: int, eta_s: float | None, stage: str = STAGE_TRAIN) -> None:
        """Record the position inside the current epoch; also counts as a heartbeat.

        With `stage=STAGE_FEATURES`, `batch`/`batches` count images whose frozen-base
        features are being computed (once per dataset, size and weights) instead.
        """
        now = time.time()
        values = {"run_id": run_id, "phase": phase, "epoch": epoch, "epochs": epochs,
                  "batch": batch, "batches": batches, "eta_s": eta_s, "updated": now,
                  "stage": stage}
        with self._tx() as con:
            con.execute(self._upsert(progress_table, ("run_id",), values))
            con.execute(update(runs_table).where(runs_table.c.id == run_id)
                        .values(heartbeat=now))

    def progress(self, run_id: str) -> ProgressRecord | None:
        with self._connect() as con:
            row = con.execute(select(progress_table)
                              .where(progress_table.c.run_id == run_id)).mappings().first()
        return dict(row) if row else None  # type: ignore[return-value]
