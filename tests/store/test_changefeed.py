"""Change tracking: the triggers log writes by syncd and by plain SQL alike; the feed reads them."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from syncd.model import CrmUser
from syncd.store import repository
from syncd.store.changefeed import (
    ChangeBatch,
    CursorAhead,
    changes_concerning,
    changes_since,
    current_cursor,
)
from syncd.store.db import make_engine, session_factory

from .helpers import change_rows, day_off, meeting

INSERT_ACTIVITY = text(
    "INSERT INTO activities (id, kind, subject, all_day, owner_id, created_at, updated_at)"
    " VALUES (:id, 'call', 'Bellen', :false, (SELECT id FROM users WHERE email = 'anna@example.com'),"
    " :ts, :ts)"
)
TS = "2026-01-05 10:00:00.000000"  # a valid literal timestamp on both databases


def params(id: str) -> dict[str, object]:
    return {"id": id, "false": False, "ts": TS}


def test_writes_through_syncd_are_tracked(session: Session, owner: str) -> None:
    start = current_cursor(session)
    repository.save_activity(session, meeting("A-1", owner=owner))
    repository.save_activity(session, day_off("D-1", owner=owner))
    session.commit()

    batch = changes_since(session, start)
    assert (set(batch.changed), batch.deleted) == ({"A-1", "D-1"}, ())
    assert batch.cursor == current_cursor(session) > start

    repository.save_activity(session, meeting("A-1", owner=owner, subject="Nieuw onderwerp"))
    repository.delete_activity(session, "D-1")
    session.commit()

    assert changes_since(session, batch.cursor) == ChangeBatch(("A-1",), ("D-1",), current_cursor(session))


def test_saving_unchanged_content_logs_nothing(session: Session, owner: str) -> None:
    repository.save_activity(session, meeting(owner=owner))
    session.commit()
    cursor = current_cursor(session)

    repository.save_activity(session, repository.get_activity(session, "A-1"))  # type: ignore[arg-type]
    session.commit()

    assert not changes_since(session, cursor)
    assert changes_since(session, cursor).cursor == cursor


def test_plain_sql_insert_update_delete_are_tracked(session: Session, engine: Engine, owner: str) -> None:
    cursor = current_cursor(session)
    with engine.begin() as conn:
        conn.execute(INSERT_ACTIVITY, params("C-1"))
        conn.execute(INSERT_ACTIVITY, params("C-2"))
    batch = changes_since(session, cursor)
    assert (batch.changed, batch.deleted) == (("C-1", "C-2"), ())

    with engine.begin() as conn:
        conn.execute(text("UPDATE activities SET subject = 'Terugbellen' WHERE id = 'C-1'"))
    assert changes_since(session, batch.cursor).changed == ("C-1",)
    batch = changes_since(session, batch.cursor)

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM activities WHERE id = 'C-2'"))
    assert changes_since(session, batch.cursor) == ChangeBatch((), ("C-2",), current_cursor(session))


def test_plain_sql_update_keeps_updated_at_current_and_logs_once(session: Session, engine: Engine, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(INSERT_ACTIVITY, params("C-1"))
    before = change_rows(engine)

    for subject in ("een", "twee", "drie"):  # quicker than the clock ticks: each must still count
        with engine.begin() as conn:
            conn.execute(text("UPDATE activities SET subject = :s WHERE id = 'C-1'"), {"s": subject})

    after = change_rows(engine)
    assert [(a, op) for _, a, op in after[len(before):]] == [("C-1", "upsert")] * 3
    stamp = repository.get_activity(session, "C-1").updated_at  # type: ignore[union-attr]
    assert stamp is not None and stamp > datetime.fromisoformat(TS + "+00:00")


def test_plain_sql_update_setting_updated_at_is_kept(session: Session, engine: Engine, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(INSERT_ACTIVITY, params("C-1"))
        conn.execute(text("UPDATE activities SET subject = 'x', updated_at = '2027-01-01 00:00:00' WHERE id = 'C-1'"))

    assert [op for _, a, op in change_rows(engine)] == ["upsert", "upsert"]
    assert repository.get_activity(session, "C-1").updated_at.year == 2027  # type: ignore[union-attr]


def test_plain_sql_on_participants_and_regarding_marks_the_activity(
    session: Session, engine: Engine, owner: str
) -> None:
    repository.save_activity(session, meeting("A-1", owner=owner))
    session.commit()
    statements = [
        (
            "INSERT INTO activity_participants (activity_id, position, kind, email, role, response)"
            " VALUES ('A-1', 9, 'external', 'new@elsewhere.example', 'required', 'needs-action')"
        ),
        "UPDATE activity_participants SET response = 'declined' WHERE activity_id = 'A-1' AND position = 0",
        "DELETE FROM activity_participants WHERE activity_id = 'A-1' AND position = 9",
        "DELETE FROM activity_regarding WHERE activity_id = 'A-1' AND position = 1",
    ]
    for statement in statements:
        cursor = current_cursor(session)
        with engine.begin() as conn:
            conn.execute(text(statement))
        assert changes_since(session, cursor) == ChangeBatch(("A-1",), (), cursor + 1), statement


def test_deleting_an_activity_leaves_one_tombstone(session: Session, engine: Engine, owner: str) -> None:
    """The cascade to participants must not log the deleted activity as changed again."""
    repository.save_activity(session, meeting("A-1", owner=owner))
    session.commit()
    cursor = current_cursor(session)

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM activities WHERE id = 'A-1'"))

    assert [(a, op) for seq, a, op in change_rows(engine) if seq > cursor] == [("A-1", "delete")]


def test_latest_change_per_id_wins(session: Session, engine: Engine, owner: str) -> None:
    cursor = current_cursor(session)
    repository.save_activity(session, meeting("A-1", owner=owner))
    repository.save_activity(session, meeting("A-2", owner=owner))
    session.commit()
    repository.delete_activity(session, "A-1")
    repository.delete_activity(session, "A-2")
    session.commit()
    repository.save_activity(session, meeting("A-2", owner=owner))  # same id again
    session.commit()

    batch = changes_since(session, cursor)

    assert (batch.changed, batch.deleted) == (("A-2",), ("A-1",))


def test_limit_pages_through_the_log(session: Session, owner: str) -> None:
    cursor = current_cursor(session)
    for n in range(5):
        repository.save_activity(session, day_off(f"D-{n}", owner=owner))
    session.commit()

    seen: list[str] = []
    while batch := changes_since(session, cursor, limit=2):
        seen += batch.changed
        cursor = batch.cursor

    assert seen == [f"D-{n}" for n in range(5)]


def test_cursor_from_another_store_is_refused(session: Session) -> None:
    with pytest.raises(CursorAhead):
        changes_since(session, current_cursor(session) + 100)


@pytest.mark.postgres
def test_postgres_seq_order_is_commit_order(pg_store_url: str) -> None:
    """A reader never moves past a seq whose transaction has not committed yet."""
    engine = make_engine(pg_store_url)
    with session_factory(engine)() as session:
        repository.add_user(session, CrmUser("anna@example.com"))
        session.commit()
        cursor = current_cursor(session)
        session.commit()
        first = engine.connect()
        first_tx = first.begin()
        first.execute(INSERT_ACTIVITY, params("C-1"))  # takes a seq, not committed yet
        done = threading.Event()

        def second_writer() -> None:
            with engine.begin() as conn:
                conn.execute(INSERT_ACTIVITY, params("C-2"))
            done.set()

        thread = threading.Thread(target=second_writer)
        thread.start()
        try:
            assert not done.wait(0.5), "the second writer must wait for the first to commit"
            assert not changes_since(session, cursor)
            session.commit()
            first_tx.commit()
            assert done.wait(10)
        finally:
            thread.join(10)
            first.close()

        assert changes_since(session, cursor).changed == ("C-1", "C-2")
    engine.dispose()


def test_a_new_activity_reaches_the_feed_of_every_user_it_names(session: Session, owner: str) -> None:
    """New activities go in as one batch (on SQLite their participant rows before them, so that
    only the activity's own row is logged): the owner and each participating CRM user still see it."""
    repository.add_user(session, CrmUser("carla@example.com", "Carla", "UTC"))
    session.commit()
    start = current_cursor(session)
    repository.save_activities(session, [meeting("A-1", owner=owner), day_off("D-1", owner=owner)])
    session.commit()

    assert set(changes_concerning(session, start, owner, "none").changed) == {"A-1", "D-1"}
    assert changes_concerning(session, start, "BART@example.com", "none").changed == ("A-1",)
    assert not changes_concerning(session, start, "carla@example.com", "none")
    stored = repository.get_activity(session, "A-1")
    assert stored is not None
    assert stored.replace(created_at=None, updated_at=None) == meeting("A-1", owner=owner)
