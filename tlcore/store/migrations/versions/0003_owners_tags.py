"""Owners, tags and notes: who created each dataset and run; a run's tags and note.

`datasets.owner` and `runs.owner` hold the signed-in user's id (an email); null is
the local operator (the CLI, or a studio without login), as every row written
before this revision. `runs.tags` is a JSON list of strings (null: none) and
`runs.note` free text.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("owner", sa.Text))
    op.add_column("runs", sa.Column("owner", sa.Text))
    op.add_column("runs", sa.Column("tags", sa.Text))
    op.add_column("runs", sa.Column("note", sa.Text))


def downgrade() -> None:
    for column in ("note", "tags", "owner"):
        op.drop_column("runs", column)
    op.drop_column("datasets", "owner")
