"""The store's run rows: creating, claiming and updating runs, their tags and notes.

Owners: `owner` is the id (an email) of the signed-in user who created a run; None
is the local operator (the CLI, or a studio without login), as on every row
written before owners were recorded. `tlcore.auth` decides who may do what.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from tlcore.config import RunConfig
from tlcore.entities import ACTIVE_STATUSES, QUEUED, RUNNING, STATUSES, RunRecord
from tlcore.errors import ConfigError, NotFoundError
from tlcore.store.base import StoreBase
from tlcore.store.tables import metrics_table, progress_table, runs_table
from tlcore.workspace import check_run_id, check_run_name

MAX_TAGS = 20
MAX_TAG_CHARS = 32
MAX_NOTE_CHARS = 2000
_TAG = re.compile(r"[a-z0-9_.:-]+")

_JSON_RUN_FIELDS = ("test_metrics", "extra")
_UPDATABLE_RUN_FIELDS = {
    "name", "status", "started", "ended", "device", "error", "pid", "heartbeat",
    "cancel_requested", "best_val_accuracy", "best_val_loss", "best_epoch",
    "test_metrics", "extra", "gpu",
}
# Writes of these fields take the claim lock, so limits and slots hold on PostgreSQL.
_LOCKING_RUN_FIELDS = {"status", "gpu"}


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


class RunsMixin(StoreBase):
    """Runs in the store (their files live in the workspace's `runs/<id>/`)."""

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
                    owner: str | None = None, max_active: int | None = None,
                    ids: Sequence[str] | None = None) -> list[str] | None:
        """Insert several runs in one transaction (all or none), as `create_run` does one.

        Args:
            runs: `(config, name)` pairs; a None name is `run-<n>`.
            status, owner: As `create_run`, for every run.
            max_active: The most queued and running runs `owner` may have, these
                included; None: no limit.
            ids: The runs' ids (from `new_run_id`), for a caller that writes their
                files before they exist in the store; default new ones.

        Returns:
            The new runs' ids in the order given, or None (nothing inserted) when they
            would take `owner` past `max_active`.
        """
        for config, _ in runs:
            if not isinstance(config, RunConfig):
                raise ConfigError(f"create_run needs a RunConfig. Received: "
                                  f"{type(config).__name__}")
        ids = list(ids) if ids is not None else [new_run_id() for _ in runs]
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
                       max_active: int | None = None, run_id: str | None = None,
                       **fields: Any) -> str | None:
        """Insert a new run already running, if fewer than `max_running` runs are running.

        For a process that trains the run itself (a sweep worker): counting and
        inserting happen in one transaction, as in `claim_next`, so the worker limit,
        the GPU slots and the owner's limit hold for sweeps and queued runs together.

        Args:
            config: The run config.
            max_running: The most runs that may be running at once.
            name: A display name; default `run-<n>`.
            slots: GPU slots (CUDA_VISIBLE_DEVICES values). When given, the run takes
                the first one no running run holds (its `gpu`), and none is created
                while every slot is held.
            owner: The user it runs for; None: the local operator.
            max_active: The most queued and running runs `owner` may have, this one
                included; None: no limit.
            run_id: The new run's id, when the caller needs it before the run exists
                (e.g. to name it in a liveness record first); default a fresh one.
            **fields: Columns to set (e.g. `pid`, `started`, `heartbeat`).

        Returns:
            The new run's id, or None when no slot is free or `owner` is at `max_active`.
        """
        values = _encode_fields(fields)
        slots = _check_slots(slots, fields)
        run_id = run_id or new_run_id()
        with self._tx() as con:
            self._lock(con)
            if max_active is not None and _active(con, owner) + 1 > max_active:
                return None
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

    def requeue(self, run_id: str, from_statuses: tuple[str, ...],
                max_active: int | None = None, **fields: Any) -> bool:
        """Put a run back at the end of the queue if its status is in `from_statuses`.

        Args:
            run_id: The run.
            from_statuses: The statuses it may be requeued from.
            max_active: The most queued and running runs its owner may have, this one
                included; counted in the requeuing transaction. None: no limit.
            **fields: Columns to set as well.

        Returns:
            True when the run was requeued (atomic compare-and-set, like `transition`);
            False when its status is not in `from_statuses` or its owner is at `max_active`.
        """
        values = _encode_fields(fields)
        last = select(func.max(runs_table.c.seq) + 1).scalar_subquery()
        with self._tx() as con:
            self._lock(con)
            if max_active is not None:
                owner = con.execute(select(runs_table.c.owner)
                                    .where(runs_table.c.id == run_id)).scalar()
                if _active(con, owner) + 1 > max_active:
                    return False
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
