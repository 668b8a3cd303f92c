"""Opening the store: one engine per URL, migrated to the newest schema before use.

SQLite is the default (one file beside the data, ``sqlite:///<data_dir>/risk.db``);
PostgreSQL is reached by URL (``postgresql+psycopg://user@host:5432/db``; a
``?options=-csearch_path%3D<schema>`` puts every table, Alembic's version table
included, into that schema).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from risk.errors import RiskError
from risk.store.migrate import upgrade

__all__ = ["Store", "StoreError", "default_store_url", "open_store", "safe_url"]

# How long a writer waits for another process's lock before giving up, ms.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Page cache per connection, KiB: the score indexes are keyed by random pseudonyms, so
# a bucket's inserts touch pages all over them; the 2 MB default makes that disk-bound.
SQLITE_CACHE_KIB = 256 * 1024


class StoreError(RiskError):
    """The store cannot be opened, or a request to it cannot be met."""


@dataclass(frozen=True)
class Store:
    """An open store: the engine, and a session factory for short ORM work.

    Bulk reads and writes go through ``engine`` (Core), which is what makes them fast.
    """

    engine: Engine
    url: str  # without its password, for messages and logs

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed when the block ends normally, rolled back when it raises."""
        with sessionmaker(self.engine, expire_on_commit=False).begin() as session:
            yield session

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def writing(self, what: str) -> Iterator[Connection]:
        """A connection in one transaction; a database refusal becomes a StoreError naming ``what``.

        The refusal may come from SQLAlchemy or, on the bulk paths that use the
        raw driver (COPY, executemany), from the driver itself; both roll back.
        """
        try:
            with self.engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
            raise StoreError(f"Cannot store {what}: {_first_line(exc)}.") from exc

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def default_store_url(data_dir: Path) -> str:
    """The SQLite file beside the data: ``sqlite:///<data_dir>/risk.db`` (absolute)."""
    return f"sqlite:///{Path(data_dir).resolve() / 'risk.db'}"


def safe_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", str(url))


def open_store(url: str) -> Store:
    """Connect to the database at ``url`` and bring its schema to the newest migration.

    Raises
    ------
    StoreError
        When the URL cannot be parsed, names an unknown driver, or the server or
        file cannot be reached; the message names the URL without its password.
    """
    shown = safe_url(url)
    engine: Engine | None = None
    try:
        engine = _engine(url)
        upgrade(engine)
    except (ArgumentError, NoSuchModuleError, SQLAlchemyError, OSError) as exc:
        if engine is not None:
            engine.dispose()
        raise StoreError(f"Cannot open the store at {shown}: {_first_line(exc)}.") from exc
    return Store(engine=engine, url=shown)


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not Path(database).parent.is_dir():
            raise OSError(f"the folder {Path(database).parent} does not exist")
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A dead server should fail within seconds, not hang the scorer.
    connect_args = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the service read while the scorer writes; NORMAL sync is durable enough under WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _first_line(exc: BaseException) -> str:
    """The driver's own reason, one line, without SQLAlchemy's background link or the SQL."""
    reason = getattr(exc, "orig", None) or exc
    text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    text = re.sub(r"\s*\(Background on this error at:.*\)$", "", text)
    return text.rstrip(".")
