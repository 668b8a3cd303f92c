"""Alembic environment: migrate the connection the store hands over.

``risk.store.migrate.upgrade`` opens a transaction and passes its connection in
``config.attributes["connection"]``. Run by hand (``alembic -x url=...``), the
environment opens its own engine from that URL instead.

The version table is created unqualified, so on PostgreSQL it lands in the
first schema of the connection's ``search_path``, beside the store's tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from risk.store.models import Base


def _migrate(connection) -> None:
    # Batch mode lets later migrations ALTER tables on SQLite (by copy-and-rename).
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as own:
        _migrate(own)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("risk.store migrations run online only: pass -x url=<database URL>")
run()
