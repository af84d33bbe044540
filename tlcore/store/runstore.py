"""RunStore: the database shared by the UI, the CLI and the workers.

One class over the table groups, each in its own module: `datasets`, `runs`,
`epochs` (metrics and progress), `listing` (a runs table's page, in SQL), all
standing on `base` (connections, transactions, claim locks, schema upgrades),
`connection` (which database, one Engine per URL) and `tables` (the layout).

Owners: `owner` is the id (an email) of the signed-in user who created a dataset or
run; None is the local operator (the CLI, or a studio without login), as on every
row written before owners were recorded. `tlcore.auth` decides who may do what.
"""

from __future__ import annotations

from tlcore.store.datasets import DatasetsMixin
from tlcore.store.epochs import EpochsMixin
from tlcore.store.listing import ListingMixin
from tlcore.store.runs import RunsMixin


class RunStore(DatasetsMixin, RunsMixin, EpochsMixin, ListingMixin):
    """Datasets, runs, metrics and progress in the workspace's database.

    Args:
        workspace: The workspace; default `Workspace.from_env()`. Its SQLite file
            holds the store unless TLCORE_DB_URL names another database.

    Raises:
        StoreError: when the database cannot be read or written, or its schema is
            newer than this code.
        ConfigError: when TLCORE_DB_URL is malformed.
    """
