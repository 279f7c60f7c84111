"""Engines, sessions and schema upgrades for the store (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, Table, create_engine, event, inspect, text
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    NoSuchModuleError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import Executable

from syncd.errors import ConfigError, SyncdError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

#: How long a SQLite writer waits for another one before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: Seconds to wait for a PostgreSQL server to accept a connection (``?connect_timeout=`` in the URL wins).
PG_CONNECT_TIMEOUT = 10


class StoreUnreachable(SyncdError):
    """The store's server cannot be reached (down, restarting, network): a temporary failure, which
    the commands report with exit code 75 (EX_TEMPFAIL) so that systemd starts ``syncd run`` again."""


def safe_url(url: str) -> str:
    """The store URL as it may be shown: the password, if any, as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(a malformed URL)"


def table_of(row: type[Any]) -> Table:
    """A mapped class's table, for Core statements (through the metadata, which types it as the
    Table it is: ``__table__`` is any FromClause)."""
    table: Table = row.metadata.tables[row.__tablename__]
    return table


def rows_changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE in the session; the number of rows it changed (0 if the driver can't tell)."""
    result = session.execute(statement)
    # Session.execute is typed as returning any Result; only a CursorResult has the count.
    if not isinstance(result, CursorResult):
        raise TypeError(f"{type(result).__name__} is not the result of an UPDATE or DELETE")
    return result.rowcount or 0


def make_engine(url: str, connections: int | None = None, **kwargs: Any) -> Engine:
    """An engine for a store URL: ``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host/db``.

    SQLite connections get foreign keys on (the cascades the triggers rely on), WAL (readers do not
    block the writer) and a busy timeout (two syncd processes may write at once). ``connections`` is
    how many threads use the engine at once: the pool keeps that many open (SQLAlchemy's default of 5
    makes the sixth concurrent pass wait for a connection).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("[store] url is not a database URL; expected e.g. sqlite:///syncd.sqlite3 or "
                          "postgresql+psycopg://syncd@db.example.com/crm") from None
    try:
        in_memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
        if connections is not None and not in_memory:
            kwargs = {"pool_size": connections, "max_overflow": connections, **kwargs}
        kwargs.setdefault("json_serializer", _json_text)
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(url, **kwargs)
            event.listen(engine, "connect", lambda conn, _record: _sqlite_pragmas(conn, wal=not in_memory))
        else:
            if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
                # libpq waits for an unanswered connect as long as the kernel retries (minutes): a
                # store behind a dropped route is reported, and syncd restarted, in seconds instead.
                kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT, **kwargs.get("connect_args", {})}
            engine = create_engine(url, pool_pre_ping=True, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        # A PostgreSQL driver is an extra (syncd[postgres]); name it instead of showing an import error.
        raise ConfigError(f"[store] url {safe_url(url)}: no database driver for it is installed ({exc}); "
                          "for PostgreSQL: pip install 'syncd[postgres]'") from None
    event.listen(engine, "handle_error", _mark_connect_failure)
    return engine


def _json_text(value: Any) -> str:
    # An activity has eight JSON columns, most of them empty: json.dumps builds an encoder for each
    # value, which was 8 % of a pull's store writes for the "null" or "[]" it returns for them.
    if value is None:
        return "null"
    if not value and isinstance(value, list | dict):
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(value)


def _mark_connect_failure(context: Any) -> None:
    # Only here can a failure to open a connection be told from a statement's: the driver raises
    # the same class for both (psycopg's OperationalError), and the wording is the server's own,
    # in its language.
    if context.connection is None and context.sqlalchemy_exception is not None:
        context.sqlalchemy_exception.syncd_connect_failed = True


def unreachable(exc: BaseException) -> bool:
    """The error is one of reaching the store (opening or losing the connection), not of a statement."""
    if getattr(exc, "syncd_connect_failed", False):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, DisconnectionError | PoolTimeout)


def store_error(exc: SQLAlchemyError, url: str) -> SyncdError:
    """What a command says for a database error that reached it: one line naming the store.

    A server that cannot be reached is :class:`StoreUnreachable` (temporary); a SQLite file that
    cannot be opened is a :class:`ConfigError` (its folder is missing or not writable, which no
    restart cures); anything else is a plain :class:`SyncdError`."""
    reason = _first_line(exc)
    where = safe_url(url)
    if unreachable(exc):
        if url.startswith("sqlite"):
            return ConfigError(f"the store {where} cannot be opened: {reason} "
                               "(does its folder exist, and may syncd write there?)")
        return StoreUnreachable(f"the store {where} cannot be reached: {reason} "
                                "(a temporary failure: try again when the database server answers)")
    return SyncdError(f"the store {where} failed: {reason}")


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip()
    return (text_.splitlines() or [type(exc).__name__])[0].strip()


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


_factories: WeakKeyDictionary[Engine, sessionmaker[Session]] = WeakKeyDictionary()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded rows usable after commit (the repository returns domain objects).

    One factory per engine: a sessionmaker is a class of its own, and a daemon asks for a session
    per pass (a new class each time cost more than the session)."""
    factory = _factories.get(engine)
    if factory is None:
        factory = _factories[engine] = sessionmaker(engine, expire_on_commit=False)
    return factory


def alembic_config() -> Config:
    """The Alembic configuration, built in code: no alembic.ini is needed anywhere."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the store at ``url`` to ``revision`` (``syncd db upgrade``). Alembic reports each step
    at INFO level on the ``alembic`` logger; the command line shows them with ``-v`` only."""
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
SCHEMA_HEAD = "0007"


def schema_revision(engine: Engine) -> str | None:
    """The store's revision by a plain query (no alembic import); ``None`` for an empty database.

    A store that cannot be reached raises: it must never read as an empty one, which would send
    the user to ``syncd db upgrade`` for a database server that is down."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(url: str) -> str | None:
    """The revision the store at ``url`` is at, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
