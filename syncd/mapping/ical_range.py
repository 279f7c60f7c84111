"""``RECURRENCE-ID;RANGE=THISANDFUTURE``: a change to one occurrence and every later one, as the CRM holds it.

What such a change makes of each later occurrence is :mod:`.range_change`'s (RFC 5545 3.8.4.4, as
recurring-ical-events, which CalDAV clients use, reads it). The later occurrences are the series' own (rule
and RDATEs, less EXDATEs).

The CRM's model has one set of times and texts per series and a change per occurrence
(:class:`~syncd.model.Override`). A bounded series' change is carried by an override for each later
occurrence, which a calendar shows exactly as the range did and which Exchange and Graph can hold too
(they cannot express "this and every later occurrence"). A series without end (an RRULE with neither COUNT
nor UNTIL) has no last occurrence to carry the change to, and one with more than :data:`MAX_CARRIED`
later occurrences would become an item too large to write: there the range override itself is kept
(``Override.this_and_future``), expanded by :mod:`.occurrences` and written back with its RANGE; the
Exchange and Graph mappings refuse that item for their targets only. A range override that changes
nothing the series says needs nothing carried.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime

from icalendar import vRecur

from syncd.mapping.ical_recurrence import normalize_rrule
from syncd.mapping.occurrences import ExpansionLimit, occurrences
from syncd.mapping.range_change import applied, changes, occurrence_key
from syncd.model import Activity, Moment, Override

MAX_CARRIED = 1000
"""Later occurrences one range override is carried to. Each becomes an override component in every
calendar the item is written to (~350 bytes): a thousand, four years of weekdays, is an item of 350 kB
that takes 2-3 s to read back on the 2-core test machine; past that the range itself is kept."""

_END = datetime(9999, 12, 30, tzinfo=UTC)
"""Where a bounded series' occurrences are listed up to: its own COUNT or UNTIL ends it first."""


def carry_forward(activity: Activity, overrides: list[Override], ranges: Iterable[Moment]) -> list[Override]:
    """``overrides`` (one per override component, read as a change of its occurrence alone) and an override
    for each later occurrence that a ``ranges`` override (RANGE=THISANDFUTURE, by RECURRENCE-ID) changes;
    or, where those cannot be listed (see the module), ``overrides`` with the ranges' own marked
    ``this_and_future`` and the RDATE PERIODs they change carried (a period's length is its own).

    ``activity.recurrence.overrides`` are the RDATE periods' own lengths, not yet merged."""
    rec = activity.recurrence
    if rec is None or activity.start is None:
        return overrides
    own = {occurrence_key(o.recurrence_id): o for o in overrides}
    own_ranges = {occurrence_key(r) for r in ranges} & own.keys()
    starts = sorted(own_ranges)
    if not starts:
        return overrides
    changing = {k for k in starts if changes(own[k])}
    if not changing:
        return overrides
    periods = {occurrence_key(o.recurrence_id): o for o in rec.overrides if o.end is not None}
    later = _later_occurrences(activity, min(changing)) if _bounded(activity) else None
    if later is None:
        overrides = [dataclasses.replace(o, this_and_future=occurrence_key(o.recurrence_id) in own_ranges)
                     for o in overrides]
        excluded = {occurrence_key(d) for d in rec.exdates}
        later = [p.recurrence_id for k, p in periods.items() if k not in excluded]
    carried: list[Override] = []
    for rid in later:
        k = occurrence_key(rid)
        if k in own:
            continue  # its own component says what it is
        ruling = max((s for s in starts if s < k), default=None)
        if ruling not in changing:
            continue  # before every range, or under one that keeps the series' values
        carried.append(applied(activity, own[ruling], rid, periods.get(k)))
    return [*overrides, *carried]


def _bounded(activity: Activity) -> bool:
    """Whether every rule of the series ends (COUNT or UNTIL)."""
    assert activity.recurrence is not None
    rec = activity.recurrence
    for rule in (r for r in (rec.rrule, *rec.extra_rrules) if r.strip()):
        parts = {str(k).upper() for k in vRecur.from_ical(normalize_rrule(rule))}
        if not parts & {"COUNT", "UNTIL"}:
            return False
    return True


def _later_occurrences(activity: Activity, after: datetime) -> list[Moment] | None:
    """The series' own starts (its RECURRENCE-IDs) after ``after``; ``None`` when there are more than
    :data:`MAX_CARRIED` (or more than syncd's expansion lists at once)."""
    assert activity.recurrence is not None
    plain = activity.replace(recurrence=dataclasses.replace(activity.recurrence, overrides=()))
    start: Moment = after.date() if activity.all_day else after
    end: Moment = _END.date() if activity.all_day else _END
    try:
        found = [s for s, _ in occurrences(plain, start, end) if occurrence_key(s) > after]
    except ExpansionLimit:
        return None
    return found if len(found) <= MAX_CARRIED else None
