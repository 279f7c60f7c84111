"""What changed in the store since a cursor: the change log the migration's triggers keep.

The cursor is the last ``activity_changes.seq`` a reader has seen. Sequence numbers only grow, and
(thanks to the lock the PostgreSQL triggers take) they become visible in order, so "everything after
my cursor" never skips a change. Reading is an index range scan on the primary key: its cost grows
with the number of changes, not with the number of activities.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, literal, select, union
from sqlalchemy.orm import Session

from syncd.errors import SyncdError
from syncd.store.db import rows_changed
from syncd.store.models import ActivityChangeRow, ActivityChangeUserRow, UserRow
from syncd.store.sync_models import SyncLinkRow


class CursorAhead(SyncdError):
    """The cursor is beyond the newest change: it belongs to another (or a re-created) store."""


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Activities changed or deleted after a cursor, each id once, by its latest change."""

    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    cursor: int
    """Where the next call starts; equal to the given cursor when nothing changed."""

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted)


def current_cursor(session: Session) -> int:
    """The newest change's seq (0 for an empty log): a reader starting now begins here."""
    return session.scalar(select(func.coalesce(func.max(ActivityChangeRow.seq), 0))) or 0


def changes_since(
    session: Session, cursor: int, limit: int | None = None, among: ColumnElement[bool] | None = None
) -> ChangeBatch:
    """The changes after ``cursor``, at most ``limit`` log entries of them (``None``: all).

    An activity changed and then deleted is reported as deleted; deleted and then created again
    (the same id), as changed. With a ``limit``, call again from the returned cursor until the batch
    is empty. ``among`` (e.g. :func:`concerning`) keeps only the log entries it holds true for; the
    returned cursor is then the last such entry's, which is where the next call may start too.
    """
    query = (
        select(ActivityChangeRow.seq, ActivityChangeRow.activity_id, ActivityChangeRow.op)
        .where(ActivityChangeRow.seq > cursor)
        .order_by(ActivityChangeRow.seq)
    )
    if among is not None:
        query = query.where(among)
    if limit is not None:
        query = query.limit(limit)
    latest: dict[str, str] = {}
    last = cursor
    for seq, activity_id, op in session.execute(query):
        latest.pop(activity_id, None)  # re-insert so the order is that of each id's last change
        latest[activity_id] = op
        last = seq
    if last == cursor and cursor > current_cursor(session):
        raise CursorAhead(f"change cursor {cursor} is ahead of this store's newest change; reset the cursor")
    return ChangeBatch(
        changed=tuple(i for i, op in latest.items() if op == "upsert"),
        deleted=tuple(i for i, op in latest.items() if op == "delete"),
        cursor=last,
    )


def concerning(email: str, binding: str, after: int) -> ColumnElement[bool]:
    """For :func:`changes_since` from ``after``: the entries of activities ``email`` owns or takes part
    in as a CRM user, or that ``binding`` has a link for (so a deletion, or an activity the user
    left, reaches it).

    Both are index range scans that start at the cursor: the user's entries in
    ``activity_change_users`` (kept by a trigger, migration 0006) and the entries of each linked
    activity. A binding never reads, nor skips over, other users' changes.
    """
    user_id = (
        select(UserRow.id).where(func.lower(UserRow.email) == func.lower(literal(email))).scalar_subquery()
    )
    users = select(ActivityChangeUserRow.seq).where(
        ActivityChangeUserRow.user_id == user_id, ActivityChangeUserRow.seq > after
    )
    linked = (
        select(ActivityChangeRow.seq)
        .join(SyncLinkRow, SyncLinkRow.activity_id == ActivityChangeRow.activity_id)
        .where(SyncLinkRow.binding == binding, ActivityChangeRow.seq > after)
    )
    return ActivityChangeRow.seq.in_(union(users, linked))


def changes_concerning(session: Session, cursor: int, email: str, binding: str) -> ChangeBatch:
    """:func:`changes_since` ``cursor``, of the entries that concern ``email`` and ``binding``
    (:func:`concerning`)."""
    return changes_since(session, cursor, among=concerning(email, binding, cursor))


def prune(session: Session, read_up_to: int, before: datetime) -> int:
    """Forget log entries every reader has read (``seq <= read_up_to``) that are older than ``before``.

    The newest entry always stays, so :func:`current_cursor` never goes back and no reader's cursor
    looks ahead of the store. Deletions are kept as long as the others: a calendar item of an activity
    deleted within ``before`` is recognised as such, not imported again. Returns how many went.
    """
    newest = current_cursor(session)
    removed = rows_changed(
        session,
        delete(ActivityChangeRow).where(
            ActivityChangeRow.seq <= read_up_to,
            ActivityChangeRow.seq < newest,
            ActivityChangeRow.changed_at < before,
        ),
    )
    # The user index of the entries gone: those below the oldest entry kept (one that outlives its
    # entry for a while is never read, since readers join the log; the next pruning takes it).
    oldest = select(func.min(ActivityChangeRow.seq)).scalar_subquery()
    session.execute(delete(ActivityChangeUserRow).where(ActivityChangeUserRow.seq < oldest))
    session.commit()
    return removed
