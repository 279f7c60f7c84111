"""What the engine needs of the CRM store and of its own bookkeeping, as protocols.

The SQL implementation is :mod:`syncd.engine.sqlstate`; keeping the protocol here lets the planner and
runner be read (and tested) without SQL in mind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from syncd.engine.actions import ConflictRecord
from syncd.engine.links import Link
from syncd.model import Activity, Kind


@dataclass(frozen=True, slots=True)
class CrmChanges:
    changed: set[str]
    deleted: set[str]
    cursor: int


@dataclass(slots=True)
class BindingState:
    name: str
    crm_cursor: int | None = None
    remote_state: str | None = None
    remote_state_at: datetime | None = None
    """When ``remote_state`` was read (before the writes it is meant to cover)."""
    retry: set[str] = field(default_factory=set)
    """Activity ids (or ``remote:<ref>`` keys) whose last action failed: looked at again next pass."""


class CrmSide(Protocol):
    def cursor(self) -> int: ...

    def changes_since(self, cursor: int) -> CrmChanges: ...

    def concerning(self, ids: Iterable[str], user: str) -> set[str]:
        """Which of these activities the user owns or takes part in as a CRM user."""
        ...

    def in_scope(self, user: str, kinds: Sequence[Kind]) -> list[str]:
        """Every activity the user owns or takes part in, of these kinds (first pass)."""
        ...

    def load(self, ids: Iterable[str]) -> dict[str, Activity]: ...

    def save(self, activity: Activity) -> None: ...

    def delete(self, activity_id: str) -> None: ...

    def is_completed(self, activity: Activity) -> bool: ...

    def deleted(self, ids: Iterable[str]) -> set[str]:
        """Which of these ids the CRM deleted (it keeps tombstones)."""
        ...



class SyncState(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """Everything written inside commits together (a CRM write and its link), or not at all."""
        ...

    def binding_state(self, binding: str) -> BindingState: ...

    def save_binding_state(self, state: BindingState) -> None: ...

    def links(self, binding: str) -> dict[str, Link]: ...

    def written_since(self, binding: str, moment: datetime) -> set[str]:
        """Activity ids whose links were written after ``moment``."""
        ...

    def save_link(self, link: Link) -> None: ...

    def delete_link(self, binding: str, activity_id: str) -> None: ...

    def record_conflict(self, binding: str, conflict: ConflictRecord, ref: str | None) -> int: ...

    def record_error(self, binding: str, key: str, message: str) -> None: ...

    def error_keys(self, binding: str) -> set[str]: ...

    def clear_error(self, binding: str, key: str) -> None: ...

    def pass_started(self, binding: str, worker: str) -> int: ...

    def pass_finished(self, pass_id: int, result: str, counts: dict[str, int], error: str | None) -> None: ...

