"""Migration 0006 indexes the change log by the CRM users each entry concerns. A store upgraded from
0005 with changes already logged hands each binding the same changes as before the upgrade (those
of its owner, and of the activities it has links for), and the changes made after it too."""

from __future__ import annotations

from sqlalchemy import Engine, text

from syncd.engine.crm_store import SqlCrmSide
from syncd.store.db import make_engine, session_factory, upgrade

TS = "2026-01-05 10:00:00.000000"  # a valid literal timestamp on both databases


def _sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def _activity(engine: Engine, activity_id: str, owner: str) -> None:
    """An activity as a CRM writing its own SQL adds it."""
    _sql(engine, "INSERT INTO activities (id, kind, subject, all_day, owner_id, created_at, updated_at)"
                 " VALUES (:id, 'call', 'Bellen', :false, (SELECT id FROM users WHERE email = :owner), :ts, :ts)",
         id=activity_id, owner=owner, false=False, ts=TS)


def _participant(engine: Engine, activity_id: str, email: str, by_id: bool) -> None:
    """A CRM user taking part: linked by user id, or (plain SQL) only named by e-mail."""
    user = "(SELECT id FROM users WHERE email = :email)" if by_id else "NULL"
    _sql(engine, "INSERT INTO activity_participants (activity_id, position, kind, user_id, email, role, response)"
                 f" VALUES (:id, 0, 'user', {user}, :email, 'required', 'needs-action')",
         id=activity_id, email=email)


def _changes(engine: Engine, cursor: int, user: str, binding: str) -> tuple[set[str], set[str]]:
    with session_factory(engine)() as session:
        found = SqlCrmSide(session, ("done",)).changes_for(cursor, user, binding)
    return found.changed, found.deleted


def test_changes_logged_before_the_upgrade_still_reach_the_right_bindings(empty_store_url: str) -> None:
    upgrade(empty_store_url, "0005")
    engine = make_engine(empty_store_url)
    try:
        for email in ("anna@example.com", "bob@example.com", "carol@example.com"):
            _sql(engine, "INSERT INTO users (email, name) VALUES (:email, 'x')", email=email)
        _activity(engine, "handed-over", "anna@example.com")
        _sql(engine, "INSERT INTO sync_links (binding, activity_id, kind, status, updated_at)"
                     " VALUES ('anna-phone', 'handed-over', 'event', 'synced', :ts)", ts=TS)
        with engine.connect() as conn:
            cursor = conn.execute(text("SELECT max(seq) FROM activity_changes")).scalar_one()
        # Logged at revision 0005, after anna's phone last read the log:
        _activity(engine, "anna-own", "anna@example.com")
        _activity(engine, "bob-invites-anna", "bob@example.com")
        _participant(engine, "bob-invites-anna", "anna@example.com", by_id=True)
        _activity(engine, "bob-names-anna", "bob@example.com")
        _participant(engine, "bob-names-anna", "ANNA@example.com", by_id=False)
        _activity(engine, "bob-alone", "bob@example.com")
        _sql(engine, "UPDATE activities SET owner_id = (SELECT id FROM users WHERE email = 'bob@example.com')"
                     " WHERE id = 'handed-over'")
        _activity(engine, "gone", "anna@example.com")
        _sql(engine, "DELETE FROM activities WHERE id = 'gone'")
    finally:
        engine.dispose()

    upgrade(empty_store_url)

    engine = make_engine(empty_store_url)
    try:
        # What the filter of revision 0005 answered: owned, taking part (by id or by e-mail), linked.
        # "gone" was made and deleted after the cursor, with no link: nobody's business any more.
        assert _changes(engine, cursor, "anna@example.com", "anna-phone") == (
            {"anna-own", "bob-invites-anna", "bob-names-anna", "handed-over"}, set())
        assert _changes(engine, cursor, "bob@example.com", "bob-phone") == (
            {"bob-invites-anna", "bob-names-anna", "bob-alone", "handed-over"}, set())
        assert _changes(engine, cursor, "carol@example.com", "carol-phone") == (set(), set())

        # And the trigger indexes what is logged after the upgrade.
        with engine.connect() as conn:
            cursor = conn.execute(text("SELECT max(seq) FROM activity_changes")).scalar_one()
        _activity(engine, "carol-new", "carol@example.com")
        _activity(engine, "bob-invites-carol", "bob@example.com")
        _participant(engine, "bob-invites-carol", "carol@example.com", by_id=False)
        _sql(engine, "DELETE FROM activities WHERE id = 'handed-over'")
        assert _changes(engine, cursor, "carol@example.com", "carol-phone") == (
            {"carol-new", "bob-invites-carol"}, set())
        # The deletion reaches the binding that has a link for it, though no user owns the row now.
        assert _changes(engine, cursor, "anna@example.com", "anna-phone") == (set(), {"handed-over"})
    finally:
        engine.dispose()
