"""RunStore: the SQLite store shared by the UI, the CLI and the workers.

One database file (`<workspace>/tlcore.db`) in WAL mode: one writer and many
readers at once, and a crash mid-write leaves it readable. Each call opens its
own short connection, so the store is safe across threads (Streamlit) and
processes (workers). Every multi-row write is one transaction.

Tables (names are constants):
    datasets  one row per imported dataset (summary for fast listing)
    runs      one row per run: config, status, timestamps, device, error, best metrics
    metrics   one row per (run, epoch): loss, accuracy, val_*, learning rate, phase, time
    progress  one row per run: position inside the current epoch, ETA
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tlcore.config import RunConfig
from tlcore.errors import ConfigError, NotFoundError, StoreError
from tlcore.workspace import Workspace, check_run_id, check_run_name

DATASETS_TABLE = "datasets"
RUNS_TABLE = "runs"
METRICS_TABLE = "metrics"
PROGRESS_TABLE = "progress"

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, LOST = (
    "queued", "running", "completed", "failed", "cancelled", "lost")
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, LOST)
ACTIVE_STATUSES = (QUEUED, RUNNING)
FINAL_STATUSES = (COMPLETED, FAILED, CANCELLED, LOST)

STAGE_TRAIN, STAGE_FEATURES = "train", "features"

METRIC_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {DATASETS_TABLE} (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    n_images INTEGER NOT NULL,
    classes TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    device TEXT,
    error TEXT,
    pid INTEGER,
    heartbeat REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    best_val_accuracy REAL,
    best_val_loss REAL,
    best_epoch INTEGER,
    test_metrics TEXT,
    extra TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON {RUNS_TABLE}(status, seq);
CREATE TABLE IF NOT EXISTS {METRICS_TABLE} (
    run_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    phase INTEGER NOT NULL,
    loss REAL, accuracy REAL, val_loss REAL, val_accuracy REAL,
    learning_rate REAL, epoch_time REAL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (
    run_id TEXT PRIMARY KEY,
    phase INTEGER, epoch INTEGER, epochs INTEGER,
    batch INTEGER, batches INTEGER, eta_s REAL, updated REAL,
    stage TEXT NOT NULL DEFAULT 'train'
);
"""

# SQLite errors of opening a WAL database whose disk is full or read-only.
_NO_WAL_ERRORS = ("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_READONLY")

_JSON_RUN_FIELDS = ("test_metrics", "extra")
_UPDATABLE_RUN_FIELDS = {
    "name", "status", "started", "ended", "device", "error", "pid", "heartbeat",
    "cancel_requested", "best_val_accuracy", "best_val_loss", "best_epoch",
    "test_metrics", "extra",
}


def _encode_fields(fields: dict[str, Any]) -> list[Any]:
    """Check run column names and status; return the values to bind (dicts as JSON).

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
    return [json.dumps(v) if k in _JSON_RUN_FIELDS and v is not None else v
            for k, v in fields.items()]


def _running(con: sqlite3.Connection) -> int:
    """How many runs are running (inside the caller's transaction)."""
    return con.execute(f"SELECT COUNT(*) FROM {RUNS_TABLE} WHERE status = ?",
                       (RUNNING,)).fetchone()[0]


def new_run_id() -> str:
    """A fresh 12-character run id."""
    return uuid.uuid4().hex[:12]


class RunStore:
    """Datasets, runs, metrics and progress in the workspace's SQLite file."""

    def __init__(self, workspace: Workspace | None = None) -> None:
        self.ws = workspace or Workspace.from_env()
        with self._connect() as con:
            con.executescript(_SCHEMA)

    # ---- plumbing -----------------------------------------------------
    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; any SQLite error inside the block becomes a one-line StoreError.

        Args:
            write: Whether the block writes. A reader on a full (or read-only) disk
                falls back to reading the database file alone.
        """
        try:
            con = sqlite3.connect(self.ws.db_path, timeout=30.0, isolation_level=None)
            try:
                con.row_factory = sqlite3.Row
                try:
                    con.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError as exc:
                    # A full (or read-only) disk has no room for the WAL's shared-memory
                    # file, which every normal connection needs; reads still work from
                    # the database file alone (commits not yet checkpointed are not seen).
                    if write or not (exc.sqlite_errorname or "").startswith(_NO_WAL_ERRORS):
                        raise
                    con.close()
                    con = sqlite3.connect(f"{self.ws.db_path.as_uri()}?immutable=1", uri=True,
                                          timeout=30.0, isolation_level=None)
                    con.row_factory = sqlite3.Row
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA busy_timeout=30000")
                yield con
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise StoreError(
                f"The run store at {self.ws.db_path} cannot be read or written: {exc}. Check "
                "that it is a tlcore database, that no other program holds it locked and that "
                "its disk has room; a store moved aside is replaced by an empty one.") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ---- datasets -----------------------------------------------------
    def add_dataset(self, name: str, n_images: int, classes: list[str],
                    summary: dict[str, Any]) -> None:
        """Record an imported dataset (its folder must already be in place)."""
        with self._tx() as con:
            con.execute(
                f"INSERT INTO {DATASETS_TABLE} (name, created, n_images, classes, summary) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, time.time(), n_images, json.dumps(classes), json.dumps(summary)),
            )

    def list_datasets(self) -> list[dict[str, Any]]:
        """All datasets, newest first: name, created, n_images, classes, summary."""
        with self._connect() as con:
            rows = con.execute(f"SELECT * FROM {DATASETS_TABLE} ORDER BY created DESC").fetchall()
        return [self._dataset_row(r) for r in rows]

    def has_dataset(self, name: str) -> bool:
        with self._connect() as con:
            return con.execute(
                f"SELECT 1 FROM {DATASETS_TABLE} WHERE name = ?", (name,)).fetchone() is not None

    def delete_dataset(self, name: str) -> None:
        with self._tx() as con:
            con.execute(f"DELETE FROM {DATASETS_TABLE} WHERE name = ?", (name,))

    @staticmethod
    def _dataset_row(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        out["classes"] = json.loads(out["classes"])
        out["summary"] = json.loads(out["summary"])
        return out

    # ---- runs ---------------------------------------------------------
    def create_run(self, config: RunConfig, name: str | None = None,
                   status: str = QUEUED) -> str:
        """Insert a new run and return its id. The config is stored as JSON, never mutated."""
        if not isinstance(config, RunConfig):
            raise ConfigError(f"create_run needs a RunConfig. Received: {type(config).__name__}")
        run_id = new_run_id()
        with self._tx() as con:
            seq = con.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {RUNS_TABLE}").fetchone()[0]
            con.execute(
                f"INSERT INTO {RUNS_TABLE} (id, seq, name, dataset, config, status, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, name or f"run-{seq}", config.dataset, config.to_json(None), status,
                 time.time()),
            )
        return run_id

    def create_running(self, config: RunConfig, max_running: int, name: str | None = None,
                       **fields: Any) -> str | None:
        """Insert a new run already running, if fewer than `max_running` runs are running.

        For a process that trains the run itself (a sweep worker): counting and
        inserting happen in one transaction, as in `claim_next`, so the worker limit
        holds for sweeps and queued runs together.

        Args:
            config: The run config.
            max_running: The most runs that may be running at once.
            name: A display name; default `run-<n>`.
            **fields: Columns to set (e.g. `pid`, `started`, `heartbeat`).

        Returns:
            The new run's id, or None when no slot is free.
        """
        run_id = new_run_id()
        values = _encode_fields(fields)
        with self._tx() as con:
            if _running(con) >= max_running:
                return None
            seq = con.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {RUNS_TABLE}").fetchone()[0]
            columns = ", ".join(["id", "seq", "name", "dataset", "config", "status", "created",
                                 *fields])
            con.execute(
                f"INSERT INTO {RUNS_TABLE} ({columns}) VALUES "
                f"({', '.join('?' * (7 + len(fields)))})",
                (run_id, seq, name or f"run-{seq}", config.dataset, config.to_json(None),
                 RUNNING, time.time(), *values))
        return run_id

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run as a dict (config parsed to a dict). Raises NotFoundError."""
        check_run_id(run_id)
        with self._connect() as con:
            row = con.execute(f"SELECT * FROM {RUNS_TABLE} WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"No run with id {run_id!r}; `python -m tlcore runs list` shows existing runs.")
        return self._run_row(row)

    def get_config(self, run_id: str) -> RunConfig:
        return RunConfig.from_dict(self.get_run(run_id)["config"])

    def list_runs(self, dataset: str | None = None,
                  statuses: tuple[str, ...] | list[str] | None = None) -> list[dict[str, Any]]:
        """Runs in creation order (oldest first), optionally filtered."""
        sql, args = f"SELECT * FROM {RUNS_TABLE}", []
        where = []
        if dataset is not None:
            where.append("dataset = ?")
            args.append(dataset)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._connect() as con:
            rows = con.execute(sql + " ORDER BY seq", args).fetchall()
        return [self._run_row(r) for r in rows]

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run (see `_UPDATABLE_RUN_FIELDS`); dict values are stored as JSON."""
        values = _encode_fields(fields)
        with self._tx() as con:
            cur = con.execute(
                f"UPDATE {RUNS_TABLE} SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                (*values, run_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"No run with id {run_id!r}.")

    def transition(self, run_id: str, from_statuses: tuple[str, ...], **fields: Any) -> bool:
        """Update a run only if its status is in `from_statuses` (atomic compare-and-set).

        Returns:
            True when the row was updated.
        """
        values = _encode_fields(fields)
        with self._tx() as con:
            cur = con.execute(
                f"UPDATE {RUNS_TABLE} SET {', '.join(f'{k} = ?' for k in fields)} "
                f"WHERE id = ? AND status IN ({','.join('?' * len(from_statuses))})",
                (*values, run_id, *from_statuses),
            )
            return cur.rowcount == 1

    def claim_next(self, max_running: int, **fields: Any) -> str | None:
        """Move the oldest queued run to running if fewer than `max_running` runs are running.

        Counting and claiming happen in one transaction, so two processes starting
        queued runs at once never exceed the limit or start the same run twice.

        Args:
            max_running: The most runs that may be running at once.
            **fields: Columns to set on the claimed run (e.g. `started`, `heartbeat`).

        Returns:
            The claimed run's id, or None when no slot is free or nothing is queued.
        """
        values = _encode_fields(fields)
        with self._tx() as con:
            if _running(con) >= max_running:
                return None
            row = con.execute(f"SELECT id FROM {RUNS_TABLE} WHERE status = ? ORDER BY seq "
                              "LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                return None
            sets = ", ".join(["status = ?", *(f"{k} = ?" for k in fields)])
            con.execute(f"UPDATE {RUNS_TABLE} SET {sets} WHERE id = ?",
                        (RUNNING, *values, row[0]))
            return row[0]

    def requeue(self, run_id: str, from_statuses: tuple[str, ...], **fields: Any) -> bool:
        """Put a run back at the end of the queue if its status is in `from_statuses`.

        Returns:
            True when the run was requeued (atomic compare-and-set, like `transition`).
        """
        values = _encode_fields(fields)
        sets = ", ".join(["status = ?", f"seq = (SELECT MAX(seq) + 1 FROM {RUNS_TABLE})",
                          *(f"{k} = ?" for k in fields)])
        with self._tx() as con:
            cur = con.execute(
                f"UPDATE {RUNS_TABLE} SET {sets} WHERE id = ? AND status IN "
                f"({','.join('?' * len(from_statuses))})",
                (QUEUED, *values, run_id, *from_statuses),
            )
            return cur.rowcount == 1

    def merge_extra(self, run_id: str, **values: Any) -> dict[str, Any]:
        """Merge `values` into a run's `extra` JSON object in one transaction; return it."""
        with self._tx() as con:
            row = con.execute(f"SELECT extra FROM {RUNS_TABLE} WHERE id = ?",
                              (run_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"No run with id {run_id!r}.")
            extra = json.loads(row[0]) if row[0] else {}
            extra.update(values)
            con.execute(f"UPDATE {RUNS_TABLE} SET extra = ? WHERE id = ?",
                        (json.dumps(extra), run_id))
        return extra

    def rename_run(self, run_id: str, name: str) -> None:
        self.update_run(run_id, name=check_run_name(name))

    def delete_run(self, run_id: str) -> None:
        """Remove a run's rows (the caller removes its folder)."""
        with self._tx() as con:
            for table, col in ((METRICS_TABLE, "run_id"), (PROGRESS_TABLE, "run_id"),
                               (RUNS_TABLE, "id")):
                con.execute(f"DELETE FROM {table} WHERE {col} = ?", (run_id,))

    def request_cancel(self, run_id: str) -> None:
        self.update_run(run_id, cancel_requested=1)

    def cancel_requested(self, run_id: str) -> bool:
        with self._connect() as con:
            row = con.execute(f"SELECT cancel_requested FROM {RUNS_TABLE} WHERE id = ?",
                              (run_id,)).fetchone()
        return bool(row and row[0])

    def heartbeat(self, run_id: str) -> None:
        self.update_run(run_id, heartbeat=time.time())

    @staticmethod
    def _run_row(row: sqlite3.Row) -> dict[str, Any]:
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
        return out

    # ---- metrics and progress ----------------------------------------
    def add_epoch(self, run_id: str, epoch: int, phase: int, metrics: dict[str, float]) -> None:
        """Record (or replace, on resume) one epoch's metrics."""
        values = [metrics.get(c) for c in METRIC_COLUMNS]
        with self._tx() as con:
            con.execute(
                f"INSERT OR REPLACE INTO {METRICS_TABLE} (run_id, epoch, phase, "
                f"{', '.join(METRIC_COLUMNS)}) VALUES (?, ?, ?{', ?' * len(METRIC_COLUMNS)})",
                (run_id, epoch, phase, *values),
            )

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Per-epoch metrics of a run, in epoch order."""
        with self._connect() as con:
            rows = con.execute(f"SELECT * FROM {METRICS_TABLE} WHERE run_id = ? ORDER BY epoch",
                               (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def metrics_for(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Per-epoch metrics of several runs (one query), ordered by run then epoch."""
        if not run_ids:
            return []
        with self._connect() as con:
            rows = con.execute(
                f"SELECT * FROM {METRICS_TABLE} WHERE run_id IN "
                f"({','.join('?' * len(run_ids))}) ORDER BY run_id, epoch", run_ids).fetchall()
        return [dict(r) for r in rows]

    def truncate_metrics(self, run_id: str, after_epoch: int) -> None:
        """Drop epochs after `after_epoch` (used when resuming from a checkpoint)."""
        with self._tx() as con:
            con.execute(f"DELETE FROM {METRICS_TABLE} WHERE run_id = ? AND epoch > ?",
                        (run_id, after_epoch))

    def set_progress(self, run_id: str, *, phase: int, epoch: int, epochs: int, batch: int,
                     batches: int, eta_s: float | None, stage: str = STAGE_TRAIN) -> None:
        """Record the position inside the current epoch; also counts as a heartbeat.

        With `stage=STAGE_FEATURES`, `batch`/`batches` count images whose frozen-base
        features are being computed (once per dataset, size and weights) instead.
        """
        now = time.time()
        with self._tx() as con:
            con.execute(
                f"INSERT OR REPLACE INTO {PROGRESS_TABLE} (run_id, phase, epoch, epochs, batch, "
                "batches, eta_s, updated, stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, phase, epoch, epochs, batch, batches, eta_s, now, stage),
            )
            con.execute(f"UPDATE {RUNS_TABLE} SET heartbeat = ? WHERE id = ?", (now, run_id))

    def progress(self, run_id: str) -> dict[str, Any] | None:
        with self._connect() as con:
            row = con.execute(f"SELECT * FROM {PROGRESS_TABLE} WHERE run_id = ?",
                              (run_id,)).fetchone()
        return dict(row) if row else None
