"""What a ``RECURRENCE-ID;RANGE=THISANDFUTURE`` change makes of each later occurrence (RFC 5545 3.2.13, 3.8.4.4).

Such a change applies to its occurrence and all later ones: a moved start moves each later occurrence by
the same difference, a changed length gives each the same length, and its texts and status are theirs
too. A later override (with or without a range) wins for the occurrences it names, and a later range ends
this one's at its own occurrence. As in recurring-ical-events, which CalDAV clients use, the difference is
that between the change's start and its RECURRENCE-ID (the occurrence's original start), both on the
series' wall clock and added on it (10:00 instead of 9:00 stays 10:00 after a DST change; a Saturday moved
to the Sunday the clocks change stays a day later at the same time); an RDATE PERIOD keeps its own length.

Both readings of a range use this: :mod:`.ical_range` writing it out as an override per later occurrence,
and :mod:`.occurrences` expanding a range the CRM keeps (``Override.this_and_future``).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from syncd.mapping.ical_recurrence import series_span
from syncd.mapping.ical_time import activity_zone, add_duration, in_zone, span
from syncd.model import Activity, Moment, Override


def changes(change: Override) -> bool:
    """Whether a range override says anything the series does not (its own occurrence aside)."""
    return dataclasses.replace(change, this_and_future=False) != Override(change.recurrence_id)


def applied(activity: Activity, change: Override, rid: Moment, period: Override | None = None) -> Override:
    """The range override ``change`` as it applies to the later occurrence ``rid`` (a single override,
    with ``None`` for what is the series'); ``period`` is the RDATE PERIOD override of ``rid``, if any."""
    zone = activity_zone(activity)
    series = series_span(activity)
    anchor = change.start if change.start is not None else change.recurrence_id
    start = moved(rid, difference(change.recurrence_id, anchor))
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
        change, recurrence_id=rid, start=None if start == rid else in_zone(start, zone), end=end,
        this_and_future=False,
    )


def difference(old: Moment, new: Moment) -> timedelta:
    """How far ``new`` lies from ``old`` on the series' clock (whole days for an all-day series)."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        return new - old.astimezone(new.tzinfo)
    return _day(new) - _day(old)


def moved(moment: Moment, by: timedelta) -> Moment:
    # Aware arithmetic keeps the wall clock: 9:00 moved to 10:00 stays 10:00 after a DST change.
    if isinstance(moment, datetime):
        return moment + by
    return moment + timedelta(days=by.days)


def occurrence_key(moment: Moment) -> datetime:
    """An occurrence's identity: its instant (a day as its UTC midnight, as ical's overrides key them)."""
    if isinstance(moment, datetime):
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def _day(moment: Moment) -> date:
    return moment.date() if isinstance(moment, datetime) else moment
