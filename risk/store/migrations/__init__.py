"""Alembic migrations of the store; run by :func:`risk.store.migrate.upgrade`, no alembic.ini needed."""
