"""The bindings' saved calendar states, read from a SQLite store with the standard library alone.

``syncd sync`` reads them before it imports SQLAlchemy (about a fifth of its start-up), to send a
binding's first requests while the rest starts (:mod:`syncd.connectors.caldav_early`). Whatever this
reads is only a guess at what the pass will read through the ORM
(:meth:`syncd.engine.sqlstate.SqlSyncState.binding_state` and ``links``): the early requests are used
only if the pass's own requests turn out byte-identical, so a wrong guess costs time, never data. It
reads ``sync_bindings.remote_state`` and whether ``sync_links`` has rows of a binding, as defined in
:mod:`syncd.store.sync_models`; a test holds the two together.

Never a write, never a new file, never a wait: a store that is locked, of another schema or not
SQLite at all gives nothing, and the command goes on as it would have without it. So does a store
that is not there yet: SQLAlchemy creates it empty, without the CRM users a pass starts by looking up
(:meth:`syncd.app.App.context`), so no pass of it gets as far as a request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

#: The URL prefixes of SQLite through the standard library's driver (SQLAlchemy's default for sqlite).
_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
_REMOTE_STATES = "SELECT name, remote_state FROM sync_bindings WHERE remote_state IS NOT NULL"
#: One row at most, from an index led by the binding (SQLite picks ix_sync_links_ref): 50,000 links cost no more.
_LINKED = "SELECT binding FROM sync_links WHERE binding = ? LIMIT 1"


@dataclass(frozen=True, slots=True)
class Saved:
    """What a store holds of the bindings' syncing, as far as the early requests need it."""

    states: Mapping[str, str]
    """Each binding's saved ``remote_state``, by binding name."""
    new: frozenset[str]
    """Of the bindings asked about, those with neither a saved state nor a link: their next pass is
    their first pull (it lists the whole calendar, knowing no item of it)."""


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


def saved(url: str, asked: Iterable[str] = ()) -> Saved | None:
    """The bindings' saved states, and which of the ``asked`` bindings are new (a link lookup each:
    ask only about those that may get an early first pull); ``None`` when there is no store to read."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    try:
        # mode=ro: never created, never written; timeout 0: a locked store is not waited for.
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=0)
    except sqlite3.Error:
        return None
    try:
        rows = connection.execute(_REMOTE_STATES).fetchall()
        states = {name: state for name, state in rows if isinstance(name, str) and isinstance(state, str)}
        new = frozenset(name for name in asked
                        if name not in states and connection.execute(_LINKED, (name,)).fetchone() is None)
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return Saved(states, new)
