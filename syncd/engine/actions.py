"""What a pass does to one item, as plain data: the plan is a list of these, decided before any write.

Each action names the activity (``key``: the CRM id, or ``remote:<ref>`` for a calendar item not yet
known to the CRM) and carries what executing it needs. ``describe()`` is the dry-run line.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.connectors.base import RemoteItem
from syncd.engine.links import Link
from syncd.model import Activity


@dataclass(frozen=True, slots=True)
class Action:
    key: str

    def describe(self) -> str:
        return f"{type(self).__name__} {self.key}"


@dataclass(frozen=True, slots=True)
class PushCreate(Action):
    """Create the activity in the calendar."""

    activity: Activity


@dataclass(frozen=True, slots=True)
class PushUpdate(Action):
    """Overwrite the calendar item with ``activity`` (If-Match the link's etag)."""

    activity: Activity
    link: Link
    remote: RemoteItem | None = None
    reverted: tuple[str, ...] = ()
    """Fields a calendar edit changed that the CRM alone decides (a registered activity's times)."""


@dataclass(frozen=True, slots=True)
class PushDelete(Action):
    link: Link
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PullCreate(Action):
    """A calendar item becomes a new CRM activity."""

    activity: Activity
    remote: RemoteItem


@dataclass(frozen=True, slots=True)
class Write(Action):
    """Bring both sides to ``result``: save it in the CRM and/or push it to the calendar.

    Covers a plain pull (``push`` false), a merge that changes both sides, and the pairing of an
    existing calendar item with a CRM activity on a first sync.
    """

    result: Activity
    remote: RemoteItem
    link: Link | None
    save_crm: bool
    push: bool
    conflict: ConflictRecord | None = None
    reverted: tuple[str, ...] = ()
    """As :attr:`PushUpdate.reverted`."""


@dataclass(frozen=True, slots=True)
class PullDelete(Action):
    """The calendar item is gone: delete the CRM activity (or cancel it, per the binding)."""

    activity: Activity
    link: Link
    cancel: bool


@dataclass(frozen=True, slots=True)
class Unlink(Action):
    """Forget the link without touching either side (both gone, or a copy that was declined)."""

    link: Link
    reason: str = ""
    save_crm: Activity | None = None


@dataclass(frozen=True, slots=True)
class Relink(Action):
    """Both sides agree; only the link's bookkeeping (etag, fingerprints) is stale."""

    link: Link
    remote: RemoteItem | None
    activity: Activity


@dataclass(frozen=True, slots=True)
class RecordConflict(Action):
    """``manual`` policy: keep both versions and wait for ``syncd conflicts resolve``."""

    conflict: ConflictRecord
    link: Link | None
    remote: RemoteItem | None = None


@dataclass(frozen=True, slots=True)
class Skip(Action):
    """Nothing is done, for a reason worth recording (an unreadable item, a duplicate)."""

    reason: str
    error: bool = False


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    """Both sides changed the same activity since the last pass."""

    activity_id: str
    fields: tuple[str, ...]
    crm: Activity | None
    remote: Activity | None
    base: Activity | None
    policy: str
    resolution: str
    """How it was settled: crm, remote, merged, or pending (manual)."""
