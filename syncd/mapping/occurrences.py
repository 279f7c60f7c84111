"""Occurrences of an activity within a window, expanded by recurring-ical-events.

The activity is expanded from the same iCalendar form :func:`syncd.mapping.ical.to_ical` writes (DTSTART
in the activity's zone, RRULE, EXDATE, overrides), so the engine's "is any occurrence in scope" agrees
with what a calendar shows. A task is placed at its start, else its due moment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import recurring_ical_events
from icalendar import Calendar, Event

from syncd.mapping.ical_recurrence import series_span, write_schedule
from syncd.mapping.ical_time import add_duration, align, in_zone
from syncd.model import Activity, Kind, Moment


def occurrences(activity: Activity, start: Moment, end: Moment) -> list[tuple[Moment, Moment]]:
    """(start, end) of every occurrence overlapping [start, end), sorted; all-day ones as dates."""
    anchor = activity.start if activity.start is not None else activity.due
    if anchor is None:
        return []
    # Events and tasks expand the same way; a VEVENT skeleton avoids VTODO's DUE/DTSTART special cases.
    skeleton = activity.replace(kind=activity.kind if activity.is_event else Kind.APPOINTMENT, start=anchor,
                                end=activity.end if activity.is_event else (activity.due or anchor), due=None)
    calendar = Calendar()
    master = Event()
    master.add("UID", "occurrences")
    write_schedule(master, skeleton)
    calendar.add_component(master)
    rec = activity.recurrence
    for override in rec.overrides if rec else ():
        component = Event()
        component.add("UID", "occurrences")
        rid = align(override.recurrence_id, anchor, activity.timezone)
        component.add("RECURRENCE-ID", rid)
        moved = align(override.start, anchor, activity.timezone) if override.start is not None else rid
        component.add("DTSTART", in_zone(moved, activity.timezone))
        component.add("DTEND", in_zone(override.end or add_duration(moved, series_span(skeleton)), activity.timezone))
        calendar.add_component(component)
    found = recurring_ical_events.of(calendar).between(_window(start), _window(end))
    result = [(_moment(e.start, activity), _moment(e.end, activity)) for e in found]
    return sorted(result, key=lambda pair: _sort_key(pair[0]))


def _window(moment: Moment) -> datetime | date:
    return moment.astimezone(UTC) if isinstance(moment, datetime) else moment


def _moment(value: Moment, activity: Activity) -> Moment:
    if isinstance(value, datetime):
        return in_zone(value if value.tzinfo else value.replace(tzinfo=UTC), activity.timezone)
    return value


def _sort_key(moment: Moment) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, time(), tzinfo=UTC)
