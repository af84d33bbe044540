"""Alembic migrations of the run store's schema (`tlcore/store/`).

`RunStore` applies them itself when it opens a database (`StoreBase._migrate` in
`store/base.py`), through `env.py` here with the store's own connection; the version
lives in its own table (`store.VERSION_TABLE`), apart from Optuna's `alembic_version` in
the same database.

A new revision is a file in `versions/` named `<NNNN>_<what>.py` whose `down_revision`
is the previous head; `store.SCHEMA_REVISION` names the head, so a store at head opens
without loading Alembic at all.
"""
