"""What changed in the store since a cursor: the change log the migration's triggers keep.

The cursor is the last ``activity_changes.seq`` a reader has seen. Sequence numbers only grow, and
(thanks to the lock the PostgreSQL triggers take) they become visible in order, so "everything after
my cursor" never skips a change. Reading is an index range scan on the primary key: its cost grows
with the number of changes, not with the number of activities.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, union
from sqlalchemy.orm import Session

from syncd.errors import SyncdError
from syncd.store.db import rows_changed, table_of
from syncd.store.models import ActivityChangeRow, ActivityChangeUserRow, UserRow
from syncd.store.sync_models import SyncLinkRow

_changes = table_of(ActivityChangeRow)
_change_users = table_of(ActivityChangeUserRow)
_users = table_of(UserRow)
_links = table_of(SyncLinkRow)

# What every daemon pass asks: built once, as Core statements on the tables (compiled once, then cached).
_NEWEST = select(func.coalesce(func.max(_changes.c.seq), 0))
_CONCERNING = (
    select(_changes.c.seq, _changes.c.activity_id, _changes.c.op)
    .where(
        _changes.c.seq > bindparam("cursor"),
        # Not the binding's own writes: a link written with its activity records the entry they made.
        ~select(_links.c.activity_id).where(
            _links.c.binding == bindparam("binding"), _links.c.activity_id == _changes.c.activity_id,
            _links.c.crm_seq >= _changes.c.seq,
        ).exists(),
        _changes.c.seq.in_(union(
            select(_change_users.c.seq).where(
                _change_users.c.user_id == select(_users.c.id)
                .where(func.lower(_users.c.email) == func.lower(bindparam("email"))).scalar_subquery(),
                _change_users.c.seq > bindparam("cursor"),
            ),
            select(_changes.c.seq)
            .join(_links, _links.c.activity_id == _changes.c.activity_id)
            .where(_links.c.binding == bindparam("binding"), _changes.c.seq > bindparam("cursor")),
        )),
    )
    .order_by(_changes.c.seq)
)


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
    return session.connection().execute(_NEWEST).scalar() or 0


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
    return _batch(session, cursor, session.execute(query), None)


def _batch(session: Session, cursor: int, rows: Iterable[Any], newest: int | None) -> ChangeBatch:
    latest: dict[str, str] = {}
    last = cursor
    for seq, activity_id, op in rows:
        latest.pop(activity_id, None)  # re-insert so the order is that of each id's last change
        latest[activity_id] = op
        last = seq
    if last == cursor and cursor > (current_cursor(session) if newest is None else newest):
        raise CursorAhead(f"change cursor {cursor} is ahead of this store's newest change; reset the cursor")
    return ChangeBatch(
        changed=tuple(i for i, op in latest.items() if op == "upsert"),
        deleted=tuple(i for i, op in latest.items() if op == "delete"),
        cursor=last,
    )


def changes_concerning(
    session: Session, cursor: int, email: str, binding: str, newest: int | None = None
) -> ChangeBatch:
    """:func:`changes_since` ``cursor``, of the entries of activities ``email`` owns or takes part in
    as a CRM user, or that ``binding`` has a link for (so a deletion, or an activity the user left,
    reaches it), but not those the binding's own links record as their write (``SyncLinkRow.crm_seq``):
    the returned cursor is the last such entry's.

    Both are index range scans that start at the cursor: the user's entries in
    ``activity_change_users`` (kept by a trigger, migration 0006) and the entries of each linked
    activity. A binding never reads, nor skips over, other users' changes.

    ``newest``: :func:`current_cursor` as the caller read it before, where it resumes next time. The
    log only grows, so it still tells a cursor from another store (no query for that); and when it is
    ``cursor``, nothing was logged in between: nothing is read at all."""
    if newest == cursor:
        return ChangeBatch((), (), cursor)
    rows = session.connection().execute(_CONCERNING, {"cursor": cursor, "email": email, "binding": binding})
    return _batch(session, cursor, rows, newest)


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
