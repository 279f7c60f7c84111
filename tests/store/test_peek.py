"""syncd.store.peek reads the bindings' saved calendar states with the standard library's sqlite3:
what it reads must be what a pass reads through the ORM (a schema change breaks this test, not the
early requests of ``syncd sync`` in silence), and it must never create, change or wait for a store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from syncd.engine.sides import BindingState
from syncd.engine.sqlstate import SqlSyncState
from syncd.store import peek
from syncd.store.db import make_engine, session_factory, upgrade


def _store(path: Path, states: dict[str, str | None]) -> str:
    """A store at the head revision with these bindings' states, saved as a pass saves them."""
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            state = SqlSyncState(session)
            with state.transaction():
                for name, remote_state in states.items():
                    state.save_binding_state(BindingState(name, crm_cursor=7, remote_state=remote_state))
    finally:
        engine.dispose()
    return url


def _orm_states(url: str, names: list[str]) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            read = {name: SqlSyncState(session).binding_state(name).remote_state for name in names}
    finally:
        engine.dispose()
    return {name: state for name, state in read.items() if state is not None}


def test_the_states_read_are_those_the_orm_reads(tmp_path: Path) -> None:
    states = {"anna": '{"collections": {"/alice/cal/": {"sync": true, "token": "t-1"}}, "version": 1}',
              "bob": "another state, ünïcode", "carol": None}
    url = _store(tmp_path / "store.sqlite3", states)
    read = peek.remote_states(url)
    assert read == _orm_states(url, [*states, "nobody"])
    assert read == {"anna": states["anna"], "bob": states["bob"]}


def test_a_relative_path_is_taken_from_the_working_directory_as_sqlalchemy_takes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _store(tmp_path / "rel.sqlite3", {"anna": "s"})
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///rel.sqlite3", "sqlite+pysqlite:///rel.sqlite3", f"sqlite:///{tmp_path}/rel.sqlite3"):
        assert peek.sqlite_path(url) == Path(str(make_url(url).database)).absolute()
        assert peek.remote_states(url) == {"anna": "s"}


def test_other_stores_and_url_forms_it_does_not_read_give_nothing(tmp_path: Path) -> None:
    _store(tmp_path / "q.sqlite3", {"anna": "s"})
    for url in ("postgresql+psycopg://u:p@127.0.0.1/db", "sqlite://", "sqlite:///:memory:",
                f"sqlite:///{tmp_path}/q.sqlite3?timeout=5", f"sqlite:///file:{tmp_path}/q.sqlite3?uri=true"):
        assert peek.remote_states(url) == {}, url


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.sqlite3"
    assert peek.remote_states(f"sqlite:///{path}") == {}
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
    for path in (empty, old, not_a_database):
        assert peek.remote_states(f"sqlite:///{path}") == {}, path
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
        assert peek.remote_states(url) == {}
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert peek.remote_states(url) == {"anna": "s"}
