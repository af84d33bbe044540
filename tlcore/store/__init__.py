"""The run store: datasets, runs, epochs and progress in SQLite or PostgreSQL.

`RunStore` is the one entry point; the status, stage and record names are
re-exported from `tlcore.entities` so callers of the store find them here too.
"""

from tlcore.entities import (
    ACTIVE_STATUSES,
    CANCELLED,
    COMPLETED,
    FAILED,
    FINAL_STATUSES,
    LOST,
    METRIC_COLUMNS,
    QUEUED,
    RUNNING,
    STAGE_FEATURES,
    STAGE_TRAIN,
    STAGE_VALIDATE,
    STATUSES,
    DatasetRecord,
    EpochRecord,
    ProgressRecord,
    RunRecord,
)
from tlcore.store.base import MIGRATIONS_DIR, SCHEMA_REVISION
from tlcore.store.connection import DB_URL_ENV, database_url, engine
from tlcore.store.listing import RunFacets, RunFilter
from tlcore.store.runs import (
    MAX_NOTE_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    check_note,
    check_tags,
    new_run_id,
)
from tlcore.store.runstore import RunStore
from tlcore.store.tables import (
    DATASETS_TABLE,
    LOCKS_TABLE,
    METRICS_TABLE,
    PROGRESS_TABLE,
    QUEUE_LOCK,
    RUNS_TABLE,
    VERSION_TABLE,
    datasets_table,
    locks_table,
    metadata,
    metrics_table,
    progress_table,
    runs_table,
)

__all__ = [
    "ACTIVE_STATUSES",
    "CANCELLED",
    "COMPLETED",
    "DATASETS_TABLE",
    "DB_URL_ENV",
    "FAILED",
    "FINAL_STATUSES",
    "LOCKS_TABLE",
    "LOST",
    "MAX_NOTE_CHARS",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "METRICS_TABLE",
    "METRIC_COLUMNS",
    "MIGRATIONS_DIR",
    "PROGRESS_TABLE",
    "QUEUED",
    "QUEUE_LOCK",
    "RUNNING",
    "RUNS_TABLE",
    "SCHEMA_REVISION",
    "STAGE_FEATURES",
    "STAGE_TRAIN",
    "STAGE_VALIDATE",
    "STATUSES",
    "VERSION_TABLE",
    "DatasetRecord",
    "EpochRecord",
    "ProgressRecord",
    "RunRecord",
    "RunFacets",
    "RunFilter",
    "RunStore",
    "check_note",
    "check_tags",
    "database_url",
    "datasets_table",
    "engine",
    "locks_table",
    "metadata",
    "metrics_table",
    "new_run_id",
    "progress_table",
    "runs_table",
]
