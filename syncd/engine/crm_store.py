"""The CRM side of a pass, on the SQL store (:class:`syncd.engine.sides.CrmSide`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncd.engine.sides import CrmChanges, Guard
from syncd.model import Activity, Kind
from syncd.store import changefeed, repository
from syncd.store.models import ActivityChangeRow, ActivityRow
from syncd.store.rules import is_completed


class SqlCrmSide:
    def __init__(self, session: Session, completed_statuses: Collection[str]) -> None:
        self.session = session
        self.completed_statuses = tuple(completed_statuses)
        self._loaded: dict[str, ActivityRow] = {}
        """Rows read by :meth:`in_scope`, so the first pass does not read them twice."""
        self._newest: int | None = None

    def cursor(self) -> int:
        self._newest = changefeed.current_cursor(self.session)
        return self._newest

    def changes_for(self, cursor: int, user: str, binding: str) -> CrmChanges:
        batch = changefeed.changes_concerning(self.session, cursor, user, binding, newest=self._newest)
        return CrmChanges(set(batch.changed), set(batch.deleted), batch.cursor)

    def in_scope(self, user: str, kinds: Sequence[Kind]) -> list[str]:
        rows = repository.activity_rows_for_user(self.session, user, kinds)
        self._loaded.update((r.id, r) for r in rows)
        return [r.id for r in rows]

    def entering(self, user: str, kinds: Sequence[Kind], ranges: Sequence[tuple[datetime, datetime]]) -> set[str]:
        found: set[str] = set()
        for window in ranges:
            found.update(repository.activity_ids_for_user(self.session, user, kinds, window))
        return found

    def load(self, ids: Iterable[str], guard: Guard) -> dict[str, Activity]:
        wanted = set(ids)
        rows = {i: self._loaded.pop(i) for i in list(wanted) if i in self._loaded}
        missing = wanted - rows.keys()
        if missing:
            rows.update(repository.load_rows(self.session, missing))
        found: dict[str, Activity] = {}
        for ident, row in rows.items():
            with guard(ident, "reading the CRM row"):
                # The rules an import or a sync write obeys, applied to what the CRM's own SQL wrote.
                activity = repository.to_activity(row)
                repository.check_activity(activity)
                found[ident] = activity
        return found

    def existing(self, ids: Iterable[str]) -> set[str]:
        return repository.existing_ids(self.session, ids)

    def save(self, activity: Activity) -> None:
        repository.save_activity(self.session, activity)

    def save_many(self, activities: Sequence[Activity]) -> None:
        repository.save_activities(self.session, activities)

    def delete(self, activity_id: str) -> None:
        repository.delete_activity(self.session, activity_id, completed_statuses=self.completed_statuses)

    def delete_many(self, activity_ids: Sequence[str]) -> None:
        repository.delete_activities(self.session, activity_ids, completed_statuses=self.completed_statuses)

    def is_completed(self, activity: Activity) -> bool:
        return is_completed(activity.completed_at, activity.status, self.completed_statuses)

    def deleted(self, ids: Iterable[str]) -> set[str]:
        wanted = list(set(ids))
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            batch = wanted[i : i + 500]
            found.update(
                self.session.scalars(
                    select(ActivityChangeRow.activity_id).where(
                        ActivityChangeRow.op == "delete", ActivityChangeRow.activity_id.in_(batch)
                    )
                )
            )
        return found - self.existing(found)

