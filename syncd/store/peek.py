"""The bindings' saved calendar states, read from a SQLite store with the standard library alone.

``syncd sync`` reads them before it imports SQLAlchemy (about a fifth of its start-up), to send a
binding's first request while the rest starts (:mod:`syncd.connectors.caldav_early`). Whatever this
reads is only a guess at what the pass will read through the ORM
(:meth:`syncd.engine.sqlstate.SqlSyncState.binding_state`): the early request is used only if the
pass's own request turns out byte-identical, so a wrong guess costs time, never data. It reads
``sync_bindings.remote_state`` as defined in :mod:`syncd.store.sync_models`; a test holds the two
together.

Never a write, never a new file, never a wait: a store that is missing, locked, of another schema or
not SQLite at all gives nothing, and the command goes on as it would have without it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

#: The URL prefixes of SQLite through the standard library's driver (SQLAlchemy's default for sqlite).
_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
_REMOTE_STATES = "SELECT name, remote_state FROM sync_bindings WHERE remote_state IS NOT NULL"


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` store URL; ``None`` for any other store, an in-memory one,
    and the URL forms this does not read as SQLAlchemy would (a query string, a ``file:`` URI,
    percent signs), which then get no early request rather than a guess."""
    prefix = next((p for p in _SQLITE_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        return None
    database = url[len(prefix):]
    if not database or database == ":memory:" or database.startswith("file:") or any(c in database for c in "?%#"):
        return None
    return Path(database).absolute()


def remote_states(url: str) -> Mapping[str, str]:
    """Each binding's saved ``remote_state`` by binding name; empty when there is none to read."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return {}
    try:
        # mode=ro: never created, never written; timeout 0: a locked store is not waited for.
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=0)
    except sqlite3.Error:
        return {}
    try:
        rows = connection.execute(_REMOTE_STATES).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        connection.close()
    return {name: state for name, state in rows if isinstance(name, str) and isinstance(state, str)}
