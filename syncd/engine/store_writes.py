"""What actions that touch only the store write, gathered so that many items commit in one transaction.

A pull of thousands of calendar items wrote each activity and its link in a transaction of its own:
about nine statements and a commit per item. Gathered here, a batch of them costs a few statements
per table and one commit, with the same guarantee: an activity and its link commit together.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from syncd.engine.actions import ConflictRecord
from syncd.engine.links import Link
from syncd.engine.sides import CrmSide, SyncState
from syncd.model import Activity


@dataclass(slots=True)
class StoreWrites:
    save: list[Activity] = field(default_factory=list)
    """Activities that passed the store's rules (``check_activity``), to create or update."""
    delete: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    unlink: list[str] = field(default_factory=list)
    conflicts: list[tuple[ConflictRecord, str | None]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    """What the report counts once this is committed."""

    def ids(self) -> set[str]:
        """The activities (and their links) these writes touch."""
        return {a.id for a in self.save} | set(self.delete) | {k.activity_id for k in self.links} | set(self.unlink)

    def add(self, other: StoreWrites) -> None:
        self.save += other.save
        self.delete += other.delete
        self.links += other.links
        self.unlink += other.unlink
        self.conflicts += other.conflicts
        self.counts.update(other.counts)

    def commit(self, crm: CrmSide, state: SyncState, binding: str) -> None:
        """All of it in one transaction, or nothing (the writes of one item must have distinct ids
        from another's: :meth:`ids`)."""
        with state.transaction():
            if self.save:
                crm.save_many(self.save)
            if self.delete:
                crm.delete_many(self.delete)
            if self.unlink:
                state.delete_links(binding, self.unlink)
            if self.links:
                state.save_links(binding, self.links, written={a.id for a in self.save})
            for conflict, ref in self.conflicts:
                state.record_conflict(binding, conflict, ref)
