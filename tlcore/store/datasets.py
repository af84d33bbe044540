"""The store's dataset rows: one per imported dataset, with its summary and owner."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import delete, insert, select, update

from tlcore.entities import DatasetRecord
from tlcore.errors import NotFoundError
from tlcore.store.base import StoreBase
from tlcore.store.tables import datasets_table


def _dataset_row(row: Any) -> DatasetRecord:
    out = dict(row)
    out["classes"] = json.loads(out["classes"])
    out["summary"] = json.loads(out["summary"])
    return out  # type: ignore[return-value]


class DatasetsMixin(StoreBase):
    """Datasets in the store (their files live in the workspace)."""

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

    def update_dataset(self, name: str, n_images: int, classes: list[str],
                       summary: dict[str, Any]) -> None:
        """Record a dataset's new head version (an edit); its name, owner and creation stay.

        Raises:
            NotFoundError: when the store has no such dataset.
        """
        with self._tx() as con:
            done = con.execute(update(datasets_table).where(datasets_table.c.name == name).values(
                n_images=n_images, classes=json.dumps(classes), summary=json.dumps(summary)))
            if done.rowcount == 0:
                raise NotFoundError(f"No dataset named {name!r}; `python -m tlcore datasets "
                                    "list` shows existing datasets.")

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
