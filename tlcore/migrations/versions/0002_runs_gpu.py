"""GPU slots: `runs.gpu`, the CUDA_VISIBLE_DEVICES value a running run holds.

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


def downgrade() -> None:
    op.drop_column("runs", "gpu")
