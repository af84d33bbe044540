"""The Runs page's questions answered in SQL: one page of matching runs, their count, facets.

`runs_page` filters (status, owner, dataset, sweep), searches (name, tags, note)
and sorts (newest first) in the database and returns one page of rows with the
columns a runs table shows, and the number of runs that match; a config stays
JSON text, for the caller to parse for the rows it shows. `run_facets` gives
the filters' options, and `get_runs` the full records of a few runs (the ticked
ones). Nothing here reads every run into Python.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB

from tlcore.entities import RunRecord
from tlcore.store.base import StoreBase
from tlcore.store.runs import _run_row
from tlcore.store.tables import runs_table

# The columns of a runs table: everything but the worker's bookkeeping.
PAGE_COLUMNS = ("id", "seq", "name", "dataset", "config", "status", "created", "started",
                "ended", "device", "error", "best_val_accuracy", "best_val_loss",
                "best_epoch", "test_metrics", "extra", "owner", "tags", "note")


@dataclass(frozen=True)
class RunFilter:
    """Which runs a runs table lists; every field left empty keeps every run.

    Attributes:
        statuses: Only runs in one of these statuses.
        datasets: Only runs on one of these datasets.
        sweeps: Only the trials of these sweep ids ("" stands for runs outside any sweep).
        owner: Only this user's runs.
        search: Only runs whose name, a tag or the note contains this text, in any case.
    """

    statuses: Sequence[str] = ()
    datasets: Sequence[str] = ()
    sweeps: Sequence[str] = ()
    owner: str | None = None
    search: str = ""


@dataclass
class RunFacets:
    """What the filters of a runs table offer, over every run in the store.

    Attributes:
        datasets: The datasets runs were trained on, sorted.
        sweeps: `(sweep id, name of its newest trial)`, newest sweep first.
        tags: Every tag some run has, sorted.
        any_owner: Whether some run has a signed-in owner.
        repeated_names: The names more than one run has.
    """

    datasets: list[str] = field(default_factory=list)
    sweeps: list[tuple[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    any_owner: bool = False
    repeated_names: set[str] = field(default_factory=set)


def _like(text: str) -> str:
    """`text` as a LIKE pattern that matches it anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _page_row(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("test_metrics", "extra"):
        out[key] = json.loads(out[key]) if out[key] else None
    out["tags"] = json.loads(out["tags"]) if out["tags"] else []
    return out


class ListingMixin(StoreBase):
    """One page of runs for a table, its count and the filters' options, read in SQL."""

    def _sweep(self) -> ColumnElement[Any]:
        """A run's sweep id ("" outside any sweep), read from its `extra` JSON in SQL."""
        extra = runs_table.c.extra
        sweep = (func.json_extract(extra, "$.sweep") if self._sqlite
                 else cast(extra, JSONB).op("->>")(literal("sweep")))
        return func.coalesce(sweep, "")

    def _where(self, which: RunFilter) -> list[ColumnElement[bool]]:
        c = runs_table.c
        where: list[ColumnElement[bool]] = []
        if which.statuses:
            where.append(c.status.in_(list(which.statuses)))
        if which.datasets:
            where.append(c.dataset.in_(list(which.datasets)))
        if which.owner is not None:
            where.append(c.owner == which.owner)
        if which.sweeps:
            where.append(self._sweep().in_(list(which.sweeps)))
        text = which.search.strip().lower()
        if text:
            pattern = _like(text)
            where.append(or_(*(func.lower(func.coalesce(col, "")).like(pattern, escape="\\")
                               for col in (c.name, c.tags, c.note))))
        return where

    def runs_page(self, which: RunFilter | None = None, limit: int | None = None,
                  offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """One page of the runs that match, newest first, and how many match in all.

        Args:
            which: The filters and search; default every run.
            limit: The most rows to return; None: every matching run (e.g. for a CSV).
            offset: How many matching runs to skip before the page.

        Returns:
            `(rows, total)`: the rows have `PAGE_COLUMNS`, with `tags` a list,
            `test_metrics` and `extra` dicts (or None) and `config` its JSON text.
        """
        where = and_(True, *self._where(which or RunFilter()))
        columns = [runs_table.c[name] for name in PAGE_COLUMNS]
        query = (select(*columns).where(where).order_by(runs_table.c.seq.desc())
                 .offset(offset))
        if limit is not None:
            query = query.limit(limit)
        with self._connect() as con:
            rows = con.execute(query).mappings().all()
            if limit is None and not offset:
                total = len(rows)
            else:
                total = con.execute(select(func.count()).select_from(runs_table)
                                    .where(where)).scalar_one()
        return [_page_row(r) for r in rows], total

    def run_facets(self) -> RunFacets:
        """The datasets, sweeps, tags and owners a runs table's filters offer."""
        c = runs_table.c
        sweep = self._sweep()
        with self._connect() as con:
            datasets = con.execute(select(c.dataset).distinct().order_by(c.dataset)
                                   ).scalars().all()
            newest = (select(sweep.label("sweep"), func.max(c.seq).label("seq"))
                      .where(c.extra.is_not(None), sweep != "").group_by(sweep).subquery())
            sweeps = con.execute(
                select(newest.c.sweep, c.name).join(newest, c.seq == newest.c.seq)
                .order_by(c.seq.desc())).all()
            tags = con.execute(select(c.tags).distinct().where(c.tags.is_not(None))
                               ).scalars().all()
            any_owner = con.execute(select(c.id).where(c.owner.is_not(None)).limit(1)
                                    ).first() is not None
            repeated = con.execute(select(c.name).group_by(c.name)
                                   .having(func.count() > 1)).scalars().all()
        return RunFacets(datasets=list(datasets), sweeps=[(s, n) for s, n in sweeps],
                         tags=sorted({t for text in tags for t in json.loads(text)}),
                         any_owner=any_owner, repeated_names=set(repeated))

    def get_runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """The runs of these ids that exist (configs parsed), in creation order (oldest first)."""
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return []
        with self._connect() as con:
            rows = con.execute(select(runs_table).where(runs_table.c.id.in_(ids))
                               .order_by(runs_table.c.seq)).mappings().all()
        return [_run_row(r) for r in rows]
