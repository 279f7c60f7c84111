"""The schedule of an activity <-> DTSTART/DTEND/DUE, RRULE, RDATE and EXDATE of one component.

Shared by :mod:`syncd.mapping.ical` (whole items) and :mod:`syncd.mapping.occurrences` (expansion), so
both see exactly the same iCalendar form of a series.

The domain keeps the RRULE as a string; it comes back from a calendar in icalendar's canonical part
order (``FREQ;UNTIL;COUNT;INTERVAL;BY...;WKST``), see :func:`normalize_rrule`. UNTIL is written in the
form RFC 5545 3.3.10 requires: a DATE for an all-day series, UTC for a zoned one. A series may have
several RRULEs (``Recurrence.extra_rrules``, their occurrences add up) and extra starts (RDATE); one of
RDATEs only has an empty ``rrule``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import vRecur, vText

from syncd.errors import ItemError
from syncd.mapping import ical_repeated_hour as repeated_hour
from syncd.mapping import timezones
from syncd.mapping.ical_props import X_TZID
from syncd.mapping.ical_time import Zone, activity_zone, span, zone_info
from syncd.model import Activity, Moment


def normalize_rrule(rrule: str) -> str:
    """The canonical text of an RRULE value (raises ``ValueError`` if it is not one)."""
    text = rrule.strip()
    if text[:6].upper() == "RRULE:":
        text = text[6:]
    return vRecur.from_ical(text).to_ical().decode("ascii")


def rrules_for(activity: Activity, zone: Zone) -> list[vRecur]:
    """The activity's RRULEs (none for a series of RDATEs only), with UNTIL in the value type its
    DTSTART requires."""
    assert activity.recurrence is not None
    rec = activity.recurrence
    rules = [rec.rrule] if rec.rrule.strip() else []
    try:
        return [canonical_rrule(rule, activity.all_day, zone) for rule in [*rules, *rec.extra_rrules]]
    except ValueError as exc:
        raise ItemError(activity.id, "RRULE", f"invalid recurrence rule: {exc}") from None


def canonical_rrule(rrule: str, all_day: bool, zone: Zone) -> vRecur:
    """The rule with UNTIL as RFC 5545 3.3.10 wants it: a DATE for all-day, UTC for a zoned series.

    An all-day series' date-time UNTIL (Outlook writes one) becomes its date in ``zone``, as Outlook
    means it (the last day's midnight there), except that the end of a day in UTC (``T235959Z``, as
    other writers say "through this day") is that day; a timed series' date UNTIL includes that whole day.
    """
    recur = vRecur.from_ical(normalize_rrule(rrule))
    until = recur.get("UNTIL")
    if until:
        tz = zone_info(zone)
        value = until[0]
        if all_day:
            if isinstance(value, datetime):
                end_of_utc_day = value.tzinfo is not None and value.astimezone(UTC).time() == time(23, 59, 59)
                value = (value.astimezone(tz) if value.tzinfo and not end_of_utc_day else value).date()
            recur["UNTIL"] = [value]
        elif isinstance(value, datetime):
            recur["UNTIL"] = [(value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)]
        else:
            recur["UNTIL"] = [datetime.combine(value, time(23, 59, 59), tzinfo=tz).astimezone(UTC)]
    return recur


def write_schedule(component: Any, activity: Activity) -> None:
    """DTSTART, DTEND (events) or DUE (tasks), RRULE and EXDATE."""
    zone = activity_zone(activity)
    if activity.start is not None:
        # In a repeated hour's second pass: see ical_repeated_hour.
        component.add("DTSTART", repeated_hour.start_value(activity, zone))
        carried = repeated_hour.carried_zone(activity, zone)
        if carried is not None:
            component.add(X_TZID, vText(carried))
    if activity.is_event:
        if activity.start is not None and activity.end is not None and not (
            activity.all_day and activity.end == activity.start
        ):
            # An all-day DTSTART alone means one day (RFC 5545 3.6.1): the domain's end == start.
            component.add("DTEND", repeated_hour.end_value(activity, activity.end, zone))
    elif activity.due is not None:
        component.add("DUE", repeated_hour.end_value(activity, activity.due, zone))
    rec = activity.recurrence
    if rec is None:
        return
    if activity.start is None:
        raise ItemError(activity.id, "RRULE", "a recurring item needs a start")
    for rule in rrules_for(activity, zone):
        component.add("RRULE", rule)
    for name, moments in (("RDATE", rec.rdates), ("EXDATE", rec.exdates)):
        for values in repeated_hour.instance_groups(moments, activity, zone):
            component.add(name, values)


def day_end(start: date, end: Moment | None) -> date:
    """The exclusive end of one occurrence of a timed series made all-day (``start`` a date, see
    :func:`syncd.store.rules.day_occurrence`): its own end date, or one day when it has none or ends
    where it starts (as an all-day DTSTART alone means, RFC 5545 3.6.1); 9999-12-31 has no next day,
    and is its own end (DTSTART alone)."""
    if isinstance(end, date) and not isinstance(end, datetime) and end > start:
        return end
    return start + timedelta(days=1) if start < date.max else start


def instant_end(start: datetime, end: Moment | None) -> datetime:
    """The end of one occurrence of an all-day series given its own times (``start`` a date-time, see
    :func:`syncd.store.rules.timed_occurrence`): its own end, or its start when it has none, as a
    date-time DTSTART alone means (RFC 5545 3.6.1); never the series' length of days."""
    return end if isinstance(end, datetime) else start


def occurrence_zone(moment: datetime, zone: Zone) -> Zone:
    """The zone to write such an occurrence's times in: its own when an IANA name is all a TZID needs,
    else the series' ``zone`` (UTC when it has none): the instant is the same either way."""
    own = moment.tzinfo
    if isinstance(own, ZoneInfo) and timezones.is_iana(own.key):
        return own.key
    return zone


def series_span(activity: Activity) -> timedelta:
    """How long one occurrence lasts, to place an override's end when it only moves the start."""
    if activity.start is None:
        return timedelta()
    return span(activity.start, activity.end if activity.is_event else None, activity.all_day)
