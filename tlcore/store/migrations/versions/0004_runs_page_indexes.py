"""Indexes for the Runs page: its newest-first order and its owner and dataset filters.

The page asks the store for one page of runs, newest first, filtered by status,
owner or dataset, with the total count (`RunStore.runs_page`); these indexes let
it read that page without scanning every run. `runs_status (status, seq)` exists
since 0001, and the metrics' primary key (run_id, epoch) serves `metrics_for`.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = {"runs_seq": ["seq"], "runs_owner": ["owner", "seq"],
           "runs_dataset": ["dataset", "seq"]}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "runs", columns, if_not_exists=True)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "runs", if_exists=True)
