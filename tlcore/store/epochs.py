"""The store's per-epoch rows: each epoch's metrics and a run's progress inside its epoch."""

from __future__ import annotations

import time

from sqlalchemy import delete, select, update

from tlcore.entities import METRIC_COLUMNS, STAGE_TRAIN, EpochRecord, ProgressRecord
from tlcore.store.base import StoreBase
from tlcore.store.tables import metrics_table, progress_table, runs_table


class EpochsMixin(StoreBase):
    """Metrics per epoch and progress per run; writing progress also counts as a heartbeat."""

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
