"""What the engine needs of the CRM store and of its own bookkeeping, as protocols.

The SQL implementation is :mod:`syncd.engine.sqlstate`; keeping the protocol here lets the planner and
runner be read (and tested) without SQL in mind.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from syncd.engine.actions import ConflictRecord
from syncd.engine.links import Link
from syncd.model import Activity, Kind

#: Runs one item's step under the engine's isolation (:meth:`syncd.engine.isolation.Isolation.guard`):
#: called with the item's key and the step's name; an exception inside costs only that item.
Guard = Callable[[str, str], AbstractContextManager[None]]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An item in error: how many passes in a row it failed, when last, and why."""

    failures: int
    last_at: datetime
    message: str


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
    """Activity ids (or ``remote:<ref>`` keys) in error: looked at again when due or changed."""
    window_start: datetime | None = None
    window_end: datetime | None = None
    """The sync window the CRM side was last searched for: activities time brings into the window
    since then are looked for, at a cost proportional to what enters it."""
    remote_location: str | None = None
    """Where the linked items live; a binding pointed elsewhere is refused until told what to do."""


class CrmSide(Protocol):
    def cursor(self) -> int: ...

    def changes_for(self, cursor: int, user: str, binding: str) -> CrmChanges:
        """The changes after ``cursor`` to activities the user owns or takes part in as a CRM user, or
        that ``binding`` has a link for; asked of the store, so other users' changes cost no reading."""
        ...

    def in_scope(self, user: str, kinds: Sequence[Kind]) -> list[str]:
        """Every activity the user owns or takes part in, of these kinds (first pass)."""
        ...

    def entering(self, user: str, kinds: Sequence[Kind], ranges: Sequence[tuple[datetime, datetime]]) -> set[str]:
        """Activities the user owns or takes part in, of these kinds, that may have an occurrence in
        one of these time ranges (a series counts from its first start on)."""
        ...

    def load(self, ids: Iterable[str], guard: Guard) -> dict[str, Activity]:
        """The activities among ``ids`` that exist; each is read under ``guard``, so one that cannot be
        read is recorded there and left out (the engine then knows it is not a deletion)."""
        ...

    def existing(self, ids: Iterable[str]) -> set[str]:
        """Which of these ids the CRM holds, readable or not."""
        ...

    def save(self, activity: Activity) -> None: ...

    def save_many(self, activities: Sequence[Activity]) -> None:
        """Save a batch of checked activities with distinct ids, inside the caller's transaction; a
        failure of any one fails the call (the caller then goes item by item)."""
        ...

    def delete(self, activity_id: str) -> None: ...

    def delete_many(self, activity_ids: Sequence[str]) -> None:
        """Delete a batch, inside the caller's transaction; as :meth:`save_many`, all or nothing."""
        ...

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

    def links(self, binding: str) -> dict[str, Link]:
        """Every link of the binding; a link's merge base may be read only when asked for."""
        ...

    def read_bases(self, links: Iterable[Link]) -> None:
        """The merge bases of these links (a plan's items) are about to be asked for: read them together."""
        ...

    def written_since(self, binding: str, moment: datetime) -> set[str]:
        """Activity ids whose links were written after ``moment``."""
        ...

    def save_link(self, link: Link) -> None: ...

    def save_links(self, binding: str, links: Sequence[Link], written: Collection[str] = ()) -> None:
        """Save the links of one binding (distinct activities) at the cost of a few statements.
        ``written``: the activities written to the CRM in this transaction (the link records that
        write as its own: the change it logs is not read back as the CRM's)."""
        ...

    def delete_link(self, binding: str, activity_id: str) -> None: ...

    def delete_links(self, binding: str, activity_ids: Sequence[str]) -> None: ...

    def record_conflict(self, binding: str, conflict: ConflictRecord, ref: str | None) -> int: ...

    def store_failure(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the store itself fails (unreachable, locked), not one item's data."""
        ...

    def refusal(self, exc: BaseException) -> str | None:
        """The store's reason if ``exc`` is it refusing one row's data (a constraint of the CRM's
        schema, a value a column cannot hold), else None."""
        ...

    def record_error(self, binding: str, key: str, message: str, at: datetime) -> None:
        """Inside a transaction: the item failed again (its count of failures in a row grows)."""
        ...

    def item_errors(self, binding: str) -> dict[str, ErrorInfo]: ...

    def clear_error(self, binding: str, key: str) -> None:
        """Inside a transaction: the item synced."""
        ...

    def pass_started(self, binding: str, worker: str) -> int: ...

    def pass_finished(self, pass_id: int, result: str, counts: dict[str, int], error: str | None) -> None: ...

