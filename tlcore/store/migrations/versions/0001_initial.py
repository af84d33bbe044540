"""The run store's first schema: datasets, runs, metrics, progress.

Tables are created only where missing, so a database written before the store had a
version table is adopted as it is.

Revision ID: 0001
Revises: none
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("n_images", sa.Integer, nullable=False),
        sa.Column("classes", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("started", sa.Float),
        sa.Column("ended", sa.Float),
        sa.Column("device", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("heartbeat", sa.Float),
        sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
        sa.Column("best_val_accuracy", sa.Float),
        sa.Column("best_val_loss", sa.Float),
        sa.Column("best_epoch", sa.Integer),
        sa.Column("test_metrics", sa.Text),
        sa.Column("extra", sa.Text),
        if_not_exists=True,
    )
    op.create_index("runs_status", "runs", ["status", "seq"], if_not_exists=True)
    op.create_table(
        "metrics",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("epoch", sa.Integer, primary_key=True),
        sa.Column("phase", sa.Integer, nullable=False),
        *(sa.Column(name, sa.Float) for name in (
            "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time")),
        if_not_exists=True,
    )
    op.create_table(
        "progress",
        sa.Column("run_id", sa.Text, primary_key=True),
        *(sa.Column(name, sa.Integer) for name in ("phase", "epoch", "epochs", "batch",
                                                    "batches")),
        sa.Column("eta_s", sa.Float),
        sa.Column("updated", sa.Float),
        sa.Column("stage", sa.Text, nullable=False, server_default="train"),
        if_not_exists=True,
    )


def downgrade() -> None:
    for table in ("progress", "metrics", "runs", "datasets"):
        op.drop_table(table)
