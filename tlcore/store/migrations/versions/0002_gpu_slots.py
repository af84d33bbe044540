"""GPU slots: `runs.gpu`, the CUDA_VISIBLE_DEVICES value a running run holds; the queue lock.

`tlcore_locks` holds one row, "queue", that claims lock (`SELECT ... FOR UPDATE`)
on PostgreSQL, so counting running runs and handing out slots is one at a time.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("gpu", sa.Text))
    locks = op.create_table("tlcore_locks", sa.Column("name", sa.Text, primary_key=True))
    op.bulk_insert(locks, [{"name": "queue"}])


def downgrade() -> None:
    op.drop_table("tlcore_locks")
    op.drop_column("runs", "gpu")
