"""What changed in the store since a cursor: the change log the migration's triggers keep.

The cursor is the last ``activity_changes.seq`` a reader has seen. Sequence numbers only grow, and
(thanks to the lock the PostgreSQL triggers take) they become visible in order, so "everything after
my cursor" never skips a change. Reading is an index range scan on the primary key: its cost grows
with the number of changes, not with the number of activities.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from syncd.errors import SyncdError
from syncd.store.db import rows_changed
from syncd.store.models import ActivityChangeRow


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


def changes_since(session: Session, cursor: int, limit: int | None = None) -> ChangeBatch:
    """The changes after ``cursor``, at most ``limit`` log entries of them (``None``: all).

    An activity changed and then deleted is reported as deleted; deleted and then created again
    (the same id), as changed. With a ``limit``, call again from the returned cursor until the batch
    is empty.
    """
    query = (
        select(ActivityChangeRow.seq, ActivityChangeRow.activity_id, ActivityChangeRow.op)
        .where(ActivityChangeRow.seq > cursor)
        .order_by(ActivityChangeRow.seq)
    )
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
