"""``RECURRENCE-ID;RANGE=THISANDFUTURE``: a change to one occurrence and every later one, as the CRM holds it.

RFC 5545 3.2.13 and 3.8.4.4: such an override applies to its occurrence and all later ones; a moved
start moves each later occurrence by the same difference, a changed length gives each the same length,
and its texts and status are theirs too. A later override (with or without a range) wins for the
occurrences it names, and a later range ends this one's at its own occurrence. As in recurring-ical-events,
which CalDAV clients use, the difference is that between the override's start and its RECURRENCE-ID (the
occurrence's original start), both on the series' wall clock and added on it (10:00 instead of 9:00 stays
10:00 after a DST change; a Saturday moved to the Sunday the clocks change stays a day later at the same
time), and the later occurrences are the series' own (rule and RDATEs, less EXDATEs); an RDATE PERIOD
keeps its own length.

The CRM's model has one set of times and texts per series and a change per occurrence
(:class:`~syncd.model.Override`), so the change is carried by an override for each later occurrence,
which a calendar shows exactly as the range did. That needs the later occurrences to be finitely many:
for a series without end (an RRULE with neither COUNT nor UNTIL) or with more than :data:`MAX_CARRIED`
later occurrences, the item is refused with the reason (:class:`~syncd.errors.ItemError`), never read as
a change of one occurrence. A range override that changes nothing the series says needs nothing carried.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from icalendar import vRecur

from syncd.errors import ItemError
from syncd.mapping.ical_recurrence import normalize_rrule, series_span
from syncd.mapping.ical_time import activity_zone, add_duration, in_zone, span
from syncd.mapping.occurrences import occurrences
from syncd.model import Activity, Moment, Override

MAX_CARRIED = 1000
"""Later occurrences one range override may be carried to. Each becomes an override component in every
calendar the item is written to (~350 bytes): a thousand, four years of weekdays, is an item of 350 kB
that takes 2-3 s to read back on the 2-core test machine; a larger one is refused rather than written."""

_END = datetime(9999, 12, 30, tzinfo=UTC)
"""Where a bounded series' occurrences are listed up to: its own COUNT or UNTIL ends it first."""


def carry_forward(
    activity: Activity, overrides: list[Override], ranges: Iterable[Moment], item: str
) -> list[Override]:
    """``overrides`` (one per override component, read as a change of its occurrence alone) and an override
    for each later occurrence that a ``ranges`` override (RANGE=THISANDFUTURE, by RECURRENCE-ID) changes.

    ``activity.recurrence.overrides`` are the RDATE periods' own lengths, not yet merged. Raises
    :class:`~syncd.errors.ItemError` when the change cannot be carried (see the module)."""
    rec = activity.recurrence
    if rec is None or activity.start is None:
        return overrides
    own = {_key(o.recurrence_id): o for o in overrides}
    starts = sorted({_key(r) for r in ranges if _key(r) in own})
    if not starts:
        return overrides
    changing = {k for k in starts if _changes(own[k])}
    if not changing:
        return overrides
    _check_bounded(activity, item)
    later = _later_occurrences(activity, min(changing), item)
    periods = {_key(o.recurrence_id): o for o in rec.overrides if o.end is not None}
    carried: list[Override] = []
    for rid in later:
        key = _key(rid)
        if key in own:
            continue  # its own component says what it is
        ruling = max((k for k in starts if k < key), default=None)
        if ruling not in changing:
            continue  # before every range, or under one that keeps the series' values
        carried.append(_carried(activity, own[ruling], rid, periods.get(key)))
    return [*overrides, *carried]


def _changes(change: Override) -> bool:
    """Whether a range override says anything the series does not (its own occurrence aside)."""
    return change != Override(change.recurrence_id)


def _check_bounded(activity: Activity, item: str) -> None:
    assert activity.recurrence is not None
    rec = activity.recurrence
    for rule in (r for r in (rec.rrule, *rec.extra_rrules) if r.strip()):
        parts = {str(k).upper() for k in vRecur.from_ical(normalize_rrule(rule))}
        if not parts & {"COUNT", "UNTIL"}:
            raise ItemError(
                item, "RECURRENCE-ID",
                "changes this and every later occurrence (RANGE=THISANDFUTURE) of a series without end: "
                "the CRM keeps one time and text per series and changes per occurrence, so it cannot hold "
                "that change for all time; the item is left alone rather than shown with the old values",
            )


def _later_occurrences(activity: Activity, after: datetime, item: str) -> list[Moment]:
    """The series' own starts (its RECURRENCE-IDs) after ``after``, at most :data:`MAX_CARRIED` of them."""
    assert activity.recurrence is not None
    plain = activity.replace(recurrence=dataclasses.replace(activity.recurrence, overrides=()))
    start: Moment = after.date() if activity.all_day else after
    end: Moment = _END.date() if activity.all_day else _END
    found = [s for s, _ in occurrences(plain, start, end) if _key(s) > after]
    if len(found) > MAX_CARRIED:
        raise ItemError(
            item, "RECURRENCE-ID",
            f"changes this and {len(found)} later occurrences (RANGE=THISANDFUTURE); syncd carries such a "
            f"change to at most {MAX_CARRIED} occurrences, so the item is left alone",
        )
    return found


def _carried(activity: Activity, change: Override, rid: Moment, period: Override | None) -> Override:
    """The range override ``change`` as it applies to the later occurrence ``rid``."""
    zone = activity_zone(activity)
    series = series_span(activity)
    anchor = change.start if change.start is not None else change.recurrence_id
    start = _moved(rid, _difference(change.recurrence_id, anchor))
    length = series
    if period is not None and period.end is not None:
        length = span(rid, period.end, activity.all_day)
    elif change.end is not None:
        length = span(anchor, change.end, activity.all_day)
    end = None
    if activity.is_event:
        finish = add_duration(start, length)
        # As ical reads an override back: an end only when the length is not the series'.
        end = in_zone(finish, zone) if span(start, finish, activity.all_day) != series else None
    return dataclasses.replace(
        change, recurrence_id=rid, start=None if start == rid else in_zone(start, zone), end=end
    )


def _difference(old: Moment, new: Moment) -> timedelta:
    """How far ``new`` lies from ``old`` on the series' clock (whole days for an all-day series)."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        return new - old.astimezone(new.tzinfo)
    return _day(new) - _day(old)


def _moved(moment: Moment, difference: timedelta) -> Moment:
    # Aware arithmetic keeps the wall clock: 9:00 moved to 10:00 stays 10:00 after a DST change.
    if isinstance(moment, datetime):
        return moment + difference
    return moment + timedelta(days=difference.days)


def _day(moment: Moment) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def _key(moment: Moment) -> datetime:
    """An occurrence's identity: its instant (a day as its UTC midnight, as ical's overrides key them)."""
    if isinstance(moment, datetime):
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
