"""Alembic environment: runs the revisions on the connection `RunStore._migrate` passes in.

The caller owns the transaction (its write lock is already taken), so the revisions
and the version row commit together or not at all.
"""

from alembic import context

from tlcore.store.tables import VERSION_TABLE, metadata

context.configure(connection=context.config.attributes["connection"],
                  target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
