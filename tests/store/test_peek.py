"""syncd.store.peek reads the bindings' saved calendar states, and whether a binding has links, with
the standard library's sqlite3: what it reads must be what a pass reads through the ORM (a schema
change breaks this test, not the early requests of ``syncd sync`` in silence), and it must never
create, change or wait for a store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from syncd.engine.links import Link
from syncd.engine.sides import BindingState
from syncd.engine.sqlstate import SqlSyncState
from syncd.model import Kind
from syncd.store import peek
from syncd.store.db import make_engine, session_factory, upgrade


def _store(path: Path, states: dict[str, str | None], linked: tuple[str, ...] = ()) -> str:
    """A store at the head revision with these bindings' states, and a link of each ``linked``
    binding, saved as a pass saves them."""
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            state = SqlSyncState(session)
            with state.transaction():
                for name, remote_state in states.items():
                    state.save_binding_state(BindingState(name, crm_cursor=7, remote_state=remote_state))
                for name in linked:
                    state.save_link(Link(name, "a-1", Kind.APPOINTMENT, "/alice/cal/a-1.ics", '"1"', None, None, None))
    finally:
        engine.dispose()
    return url


def _orm_read(url: str, names: list[str]) -> tuple[dict[str, str], set[str]]:
    """The states a pass reads, and the bindings whose pass starts with neither a state nor a link."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            state = SqlSyncState(session)
            read = {name: state.binding_state(name).remote_state for name in names}
            new = {name for name in names if read[name] is None and not state.links(name)}
    finally:
        engine.dispose()
    return {name: s for name, s in read.items() if s is not None}, new


def _states(url: str) -> dict[str, str] | None:
    read = peek.saved(url)
    return None if read is None else dict(read.states)


def test_the_states_read_are_those_the_orm_reads(tmp_path: Path) -> None:
    states = {"anna": '{"collections": {"/alice/cal/": {"sync": true, "token": "t-1"}}, "version": 1}',
              "bob": "another state, ünïcode", "carol": None}
    url = _store(tmp_path / "store.sqlite3", states)
    read = peek.saved(url)
    assert read is not None
    assert read.states == _orm_read(url, [*states, "nobody"])[0]
    assert read.states == {"anna": states["anna"], "bob": states["bob"]}


def test_a_binding_is_new_when_the_orm_finds_neither_its_state_nor_a_link(tmp_path: Path) -> None:
    # dave has links but no state (a pass that failed after its first writes, or a state cleared);
    # erin both; carol's row holds no state; nobody has no row at all.
    url = _store(tmp_path / "store.sqlite3", {"anna": "s", "carol": None, "erin": "s"}, linked=("dave", "erin"))
    names = ["anna", "carol", "dave", "erin", "nobody"]
    read = peek.saved(url, asked=names)
    assert read is not None
    assert read.new == _orm_read(url, names)[1] == {"carol", "nobody"}
    # Only the bindings asked about are looked up.
    assert peek.saved(url, asked=["carol"]) == peek.Saved(read.states, frozenset({"carol"}))
    assert peek.saved(url) == peek.Saved(read.states, frozenset())


def test_a_relative_path_is_taken_from_the_working_directory_as_sqlalchemy_takes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _store(tmp_path / "rel.sqlite3", {"anna": "s"})
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///rel.sqlite3", "sqlite+pysqlite:///rel.sqlite3", f"sqlite:///{tmp_path}/rel.sqlite3"):
        assert peek.sqlite_path(url) == Path(str(make_url(url).database)).absolute()
        assert _states(url) == {"anna": "s"}


def test_other_stores_and_url_forms_it_does_not_read_give_nothing(tmp_path: Path) -> None:
    _store(tmp_path / "q.sqlite3", {"anna": "s"})
    for url in ("postgresql+psycopg://u:p@127.0.0.1/db", "sqlite://", "sqlite:///:memory:",
                f"sqlite:///{tmp_path}/q.sqlite3?timeout=5", f"sqlite:///file:{tmp_path}/q.sqlite3?uri=true"):
        assert peek.saved(url, asked=["anna"]) is None, url


def test_a_missing_store_is_not_created_and_gives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "none.sqlite3"
    # Not "every binding is new": a store made now has no CRM users, so no pass would get to a request.
    assert peek.saved(f"sqlite:///{path}", asked=["anna"]) is None
    assert not path.exists()


def test_a_store_of_another_schema_gives_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE sync_bindings (name TEXT PRIMARY KEY, crm_cursor INTEGER)")
        conn.execute("INSERT INTO sync_bindings VALUES ('anna', 1)")
    conn.close()
    not_a_database = tmp_path / "text.sqlite3"
    not_a_database.write_text("not a database\n" * 100)
    # A store of the head revision but for the links table: nothing either, not "no links".
    no_links = tmp_path / "no_links.sqlite3"
    with sqlite3.connect(_store(no_links, {"anna": "s"}).removeprefix("sqlite:///")) as conn:
        conn.execute("DROP TABLE sync_links")
    conn.close()
    for path in (empty, old, not_a_database, no_links):
        assert peek.saved(f"sqlite:///{path}", asked=["bob"]) is None, path
    assert not_a_database.read_text() == "not a database\n" * 100


def test_a_locked_store_gives_nothing_without_waiting_and_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    url = _store(path, {"anna": "s"})
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        # A writer in the rollback journal's exclusive lock: no reader may look in (in WAL mode, which
        # syncd's own engine sets, a reader never waits for a writer; this is the case that would).
        holder.execute("PRAGMA journal_mode = DELETE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE sync_bindings SET remote_state = 'changed'")
        assert peek.saved(url, asked=["bob"]) is None
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert peek.saved(url, asked=["bob"]) == peek.Saved({"anna": "s"}, frozenset({"bob"}))
