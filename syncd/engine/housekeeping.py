"""Keeping the store small over months of running: the change log is pruned behind the slowest
binding, and the record of passes is kept for a while (status, metrics and audits read it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from syncd.store.changefeed import current_cursor, prune
from syncd.store.db import rows_changed
from syncd.store.sync_models import SyncBindingRow, SyncPassRow

#: Days of finished passes kept in ``sync_passes``.
PASS_HISTORY_DAYS = 30


def prune_change_log(session: Session, bindings: list[str], keep_days: int, now: datetime | None = None) -> int:
    """Prune what every configured binding has read and that is older than ``keep_days``.

    A binding that has never finished a pass reads the CRM in full on its first one, so it holds
    nothing back; a configured binding whose cursor lags holds the log back to its cursor.
    """
    cursors = session.scalar(
        select(func.min(SyncBindingRow.crm_cursor)).where(
            SyncBindingRow.name.in_(bindings), SyncBindingRow.crm_cursor.is_not(None)
        )
    )
    read_up_to = current_cursor(session) if cursors is None else cursors
    before = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    return prune(session, read_up_to, before)


def prune_passes(session: Session, keep_days: int = PASS_HISTORY_DAYS, now: datetime | None = None) -> int:
    """Drop the record of passes that finished more than ``keep_days`` ago."""
    before = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    removed = rows_changed(session, delete(SyncPassRow).where(SyncPassRow.finished_at < before))
    session.commit()
    return removed
