"""The store's tables, spelled out once: their names and SQLAlchemy metadata.

Alembic's revisions (`migrations/versions/`) build these tables; the metadata
here is what the code reads and writes, and what `migrations/env.py` compares
against.

Tables:
    datasets  one row per imported dataset (summary for fast listing, owner)
    runs      one row per run: config, status, timestamps, device, GPU slot, error,
              best metrics, owner, tags, note
    metrics   one row per (run, epoch): loss, accuracy, val_*, learning rate, phase, time
    progress  one row per run: position inside the current epoch, ETA
    tlcore_locks  one row ("queue") that claims lock on PostgreSQL
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, Table, Text

from tlcore.entities import METRIC_COLUMNS, STAGE_TRAIN

DATASETS_TABLE = "datasets"
RUNS_TABLE = "runs"
METRICS_TABLE = "metrics"
PROGRESS_TABLE = "progress"
LOCKS_TABLE = "tlcore_locks"
VERSION_TABLE = "tlcore_schema_version"

# The row of `tlcore_locks` that claims and run numbering lock on PostgreSQL.
QUEUE_LOCK = "queue"

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
    Index("runs_seq", "seq"),
    Index("runs_owner", "owner", "seq"),
    Index("runs_dataset", "dataset", "seq"),
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
