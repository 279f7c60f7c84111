"""The change log indexed by the CRM users each entry concerns, so that a binding reads its owner's
changes through an index instead of filtering every entry after its cursor.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

``activity_change_users`` holds one row per (user, log entry) for the activity's owner and every
participant of kind ``user`` (by user id, or by an e-mail a CRM wrote in plain SQL), as they stand
when the entry is written. A trigger on ``activity_changes`` itself fills it, so the triggers of
revision 0001 (and whatever writes the log) stay as they are. An entry no user is concerned with
any more (a deletion, an activity handed to someone else, a participant removed) reaches a binding
through its links instead, found by the new index on ``activity_changes (activity_id, seq)``.

The entries already in the log are indexed here, by the activities as they stand now: the same
answer the filter gave for them before this revision.

There is no foreign key to the log: pruning removes the index rows below the oldest entry kept
(a cascade would probe this table once per entry pruned).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _concerned(seq: str, activity_id: str, entries: str = "") -> str:
    """The (user, entry) pairs for log entries: the activity's owner and its participants of kind
    user, by id or by e-mail. ``entries`` is a FROM item that names the entries (the trigger has one
    entry, NEW, and needs none); UNION leaves each pair once."""
    return f"""
        SELECT a.owner_id, {seq} FROM {entries}activities a WHERE a.id = {activity_id}
        UNION
        SELECT p.user_id, {seq} FROM {entries}activity_participants p
            WHERE p.activity_id = {activity_id} AND p.kind = 'user' AND p.user_id IS NOT NULL
        UNION
        SELECT u.id, {seq} FROM {entries}activity_participants p JOIN users u ON lower(u.email) = lower(p.email)
            WHERE p.activity_id = {activity_id} AND p.kind = 'user' AND p.email IS NOT NULL"""


_SQLITE_TRIGGER = f"""CREATE TRIGGER activity_changes_index_users AFTER INSERT ON activity_changes
    BEGIN
        INSERT INTO activity_change_users (user_id, seq) {_concerned("NEW.seq", "NEW.activity_id")};
    END"""

_PG_FUNCTION = f"""CREATE FUNCTION activity_changes_index_users() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO activity_change_users (user_id, seq) {_concerned("NEW.seq", "NEW.activity_id")};
        RETURN NULL;
    END $$"""

_PG_TRIGGER = """CREATE TRIGGER activity_changes_index_users AFTER INSERT ON activity_changes
    FOR EACH ROW EXECUTE FUNCTION activity_changes_index_users()"""

_BACKFILL = f"""INSERT INTO activity_change_users (user_id, seq)
    {_concerned("c.seq", "c.activity_id", "activity_changes c, ")}"""


def upgrade() -> None:
    op.create_table(
        "activity_change_users",
        sa.Column("user_id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    )
    op.create_index("ix_activity_changes_activity", "activity_changes", ["activity_id", "seq"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute(_SQLITE_TRIGGER)
    else:
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    op.execute(_BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS activity_changes_index_users")
    else:
        op.execute("DROP FUNCTION IF EXISTS activity_changes_index_users() CASCADE")
    op.drop_index("ix_activity_changes_activity", "activity_changes")
    op.drop_table("activity_change_users")
