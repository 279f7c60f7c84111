"""Pure conflict resolution: given the merge base and both sides' versions, what the result is."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from syncd.mapping.fingerprint import canonical
from syncd.model import Activity, Participant

#: The CRM alone decides who owns an activity and what kind it is; a calendar cannot change them.
CRM_ONLY_FIELDS = frozenset({"owner", "kind"})


@dataclass(frozen=True, slots=True)
class MergeResult:
    result: Activity
    conflicting: tuple[str, ...]
    """Fields changed on both sides to different values; settled by the winner."""


def _same(a: Activity | None, b: Activity | None, name: str) -> bool:
    if a is None or b is None:
        return False
    return canonical(a, [name]) == canonical(b, [name])


def _empty(activity: Activity, name: str) -> bool:
    """Without a base (two versions paired on a first sync), a side that never had a value did not
    change it: the other side's value is simply added."""
    value = getattr(activity, name)
    return value is None or (not value and isinstance(value, str | tuple | dict))


def _merge_participants(
    base: tuple[Participant, ...] | None, crm: tuple[Participant, ...], remote: tuple[Participant, ...], crm_wins: bool
) -> tuple[tuple[Participant, ...], bool]:
    """Three-way merge per participant (a response set in the calendar, a person added in the CRM)."""
    b = {p.key: p for p in base or ()}
    c = {p.key: p for p in crm}
    r = {p.key: p for p in remote}
    merged: dict[str, Participant] = {}
    clash = False
    for key in [*c, *(k for k in r if k not in c)]:
        cv, rv, bv = c.get(key), r.get(key), b.get(key)
        if cv == rv:
            chosen = cv
        elif base is not None and cv == bv:
            chosen = rv
        elif base is not None and rv == bv:
            chosen = cv
        else:
            clash = True
            chosen = cv if crm_wins else rv
        if chosen is not None:
            merged[key] = chosen
    return tuple(merged.values()), clash


def take_remote(crm: Activity, remote: Activity, fields: Collection[str]) -> Activity:
    """The CRM activity with every field the calendar holds taken from the calendar's version."""
    changes = {f: getattr(remote, f) for f in fields if f not in CRM_ONLY_FIELDS}
    return crm.replace(**changes)


def three_way(
    base: Activity | None, crm: Activity, remote: Activity, fields: Collection[str], crm_wins: bool
) -> MergeResult:
    """Field-level merge: a field changed on one side only takes that side's value; a field changed on
    both sides to different values goes to the winner. Without a base every difference is a clash."""
    changes: dict[str, object] = {}
    conflicting: list[str] = []
    for name in fields:
        if name in CRM_ONLY_FIELDS or _same(crm, remote, name):
            continue
        if name == "participants":
            merged, clash = _merge_participants(
                base.participants if base else None, crm.participants, remote.participants, crm_wins
            )
            changes[name] = merged
            if clash:
                conflicting.append(name)
            continue
        if _same(base, crm, name) or (base is None and _empty(crm, name)):
            changes[name] = getattr(remote, name)
        elif _same(base, remote, name) or (base is None and _empty(remote, name)):
            continue
        else:
            conflicting.append(name)
            if not crm_wins:
                changes[name] = getattr(remote, name)
    return MergeResult(crm.replace(**changes), tuple(conflicting))


def newest_is_crm(crm: Activity, remote_modified: datetime | None, fallback_crm: bool) -> bool:
    """``newest-wins``: compare modification times. Clocks of two systems are compared, so a skew
    between the CRM's database and the calendar server decides near-simultaneous edits; when either
    time is unknown the binding's ``merge_winner`` decides."""
    if crm.updated_at is None or remote_modified is None:
        return fallback_crm
    # Calendars keep whole seconds (LAST-MODIFIED); within the same second neither is newer.
    crm_second, remote_second = int(crm.updated_at.timestamp()), int(remote_modified.timestamp())
    if crm_second == remote_second:
        return fallback_crm
    return crm_second > remote_second
