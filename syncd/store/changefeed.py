"""What changed in the store since a cursor: the change log the migration's triggers keep.

The cursor is the last ``activity_changes.seq`` a reader has seen. Sequence numbers only grow, and
(thanks to the lock the PostgreSQL triggers take) they become visible in order, so "everything after
my cursor" never skips a change. Reading is an index range scan on the primary key: its cost grows
with the number of changes, not with the number of activities.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, exists, false, func, literal, or_, select
from sqlalchemy.orm import Session

from syncd.errors import SyncdError
from syncd.store.db import rows_changed
from syncd.store.models import ActivityChangeRow, ActivityRow, ParticipantRow, UserRow
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


def concerning(session: Session, email: str, binding: str) -> ColumnElement[bool]:
    """For :func:`changes_since`: the entries of activities ``email`` owns or takes part in as a CRM
    user, or that ``binding`` has a link for (so a deletion, or an activity the user left, reaches it).

    Each entry after the cursor is checked by primary-key probes in the database, so a binding never
    reads other users' changes; the log itself is still scanned from the cursor (an index by user
    would need the log to name the users an entry concerns).
    """
    # The same rules as the first pass's scope (repository.activity_rows_for_user): e-mails compared
    # lowered by the database on both sides.
    user_id = session.scalar(select(UserRow.id).where(func.lower(UserRow.email) == func.lower(literal(email))))
    entry = ActivityChangeRow.activity_id
    owned = (
        exists().where(ActivityRow.id == entry, ActivityRow.owner_id == user_id) if user_id is not None else false()
    )
    as_user = ParticipantRow.user_id == user_id if user_id is not None else false()
    takes_part = exists().where(
        ParticipantRow.activity_id == entry,
        ParticipantRow.kind == "user",
        or_(as_user, func.lower(ParticipantRow.email) == func.lower(literal(email))),
    )
    linked = exists().where(SyncLinkRow.binding == binding, SyncLinkRow.activity_id == entry)
    return or_(linked, owned, takes_part)


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
    session.commit()
    return removed
