"""Engines, sessions and schema upgrades for the store (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

#: How long a SQLite writer waits for another one before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for a store URL: ``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host/db``.

    SQLite connections get foreign keys on (the cascades the triggers rely on), WAL (readers do not
    block the writer) and a busy timeout (two syncd processes may write at once).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, **kwargs)
        in_memory = parsed.database in (None, "", ":memory:")
        event.listen(engine, "connect", lambda conn, _record: _sqlite_pragmas(conn, wal=not in_memory))
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, *, wal: bool) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    if wal:
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts the database and survives a killed process; a power cut
        # may lose the last commits, which the next pass re-pairs by UID. It saves an fsync per commit.
        cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded rows usable after commit (the repository returns domain objects)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    """The Alembic configuration, built in code: no alembic.ini is needed anywhere."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the store at ``url`` to ``revision`` (``syncd db upgrade``)."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


#: The newest migration; a test checks it against alembic's own head, so commands that find the store
#: up to date never need to import alembic.
SCHEMA_HEAD = "0004"


def schema_revision(engine: Engine) -> str | None:
    """The store's revision by a plain query (no alembic import); ``None`` for an empty database."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def current_revision(url: str) -> str | None:
    """The revision the store at ``url`` is at, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
