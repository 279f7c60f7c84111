"""The activity's reminder <-> VALARM.

The domain has one reminder; a calendar item may carry several alarms (Apple and Thunderbird add their
own). The reminder is read as the *earliest* alarm, in minutes before the start (relative TRIGGER,
``RELATED=END`` and absolute TRIGGER all count); an alarm after the start (a to-do's "15 minutes before
the deadline" is one) is a negative number of minutes. On write the alarms of the previous version are kept
when they fire *later* than the reminder (so they do not change what is read back), the one at exactly
the reminder is kept as it is (with other clients' properties), earlier ones are dropped because the
CRM moved the reminder past them, and a DISPLAY alarm is added when none sits at the reminder. syncd's
own alarm (marked ``X-SYNCD-ALARM``) is always replaced. No reminder in the CRM removes every alarm that
fires at a time. For a task without a start the reminder is relative to DUE.

Alarms that never fire at a time are no reminder and are always kept: ``ACTION:NONE`` (RFC 9074), location
alarms (``PROXIMITY``) and Apple's placeholder ``TRIGGER;VALUE=DATE-TIME:19760401T005545Z``, which Apple
Calendar writes for "Alert: None" so that the calendar's default alert is not added. Read as a time, that
placeholder would be a reminder decades before the event; dropped on write, Apple would add its default.

An occurrence (a RECURRENCE-ID component) has its own alarms: read the same way against its own start,
its reminder is the override's when it differs from the series' (none at all is ``reminder_off``);
written, an occurrence without its own reminder gets the series' alarms.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from icalendar import Alarm

from syncd.mapping.ical_time import Zone, zone_info
from syncd.model import Moment

X_ALARM = "X-SYNCD-ALARM"
APPLE_NO_ALARM = datetime(1976, 4, 1, 0, 55, 45, tzinfo=UTC)


def _instant(moment: Moment, zone: Zone) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, time(), tzinfo=zone_info(zone))


def never_fires(alarm: Any) -> bool:
    """An alarm that stands for "no alert" or fires at a place, not at a time."""
    if str(alarm.get("ACTION", "")).upper() == "NONE" or "PROXIMITY" in alarm or "X-APPLE-PROXIMITY" in alarm:
        return True
    value = getattr(alarm.get("TRIGGER"), "dt", None)
    return isinstance(value, datetime) and value.tzinfo is not None and value == APPLE_NO_ALARM


def alarm_minutes(alarm: Any, start: Moment | None, end: Moment | None, zone: Zone) -> int | None:
    """Minutes between the alarm and the start (or, without a start, the end/due); ``None`` if unknown."""
    ref = start if start is not None else end
    if never_fires(alarm):
        return None
    trigger = alarm.get("TRIGGER")
    value = getattr(trigger, "dt", None)
    if ref is None or value is None:
        return None
    if isinstance(value, timedelta):
        related_end = str(trigger.params.get("RELATED", "START")).upper() == "END"
        anchor = end if related_end and end is not None else ref
        # Relative to the anchor, never via the instant it fires: 15 minutes before 0001-01-01 is no datetime.
        return round(((_instant(ref, zone) - _instant(anchor, zone)) - value).total_seconds() / 60)
    if isinstance(value, datetime):
        fires = value if value.tzinfo else value.replace(tzinfo=zone_info(zone))
    elif isinstance(value, date):
        fires = _instant(value, zone)
    else:
        return None
    return round((_instant(ref, zone) - fires).total_seconds() / 60)


def read_reminder(component: Any, start: Moment | None, end: Moment | None, zone: Zone) -> int | None:
    minutes = [alarm_minutes(a, start, end, zone) for a in component.walk("VALARM")]
    known = [m for m in minutes if m is not None]
    return max(known) if known else None


def occurrence_reminder(
    component: Any, start: Moment | None, end: Moment | None, zone: Zone, series: int | None
) -> tuple[int | None, bool]:
    """An occurrence's own reminder as ``(minutes, off)``: ``(None, False)`` while it rings as the
    series does, ``(None, True)`` when it rings nothing although the series has a reminder."""
    own = read_reminder(component, start, end, zone)
    if own == series:
        return None, False
    return own, own is None


def write_alarms(
    component: Any, minutes: int | None, start: Moment | None, end: Moment | None, zone: Zone,
    subject: str, base: Any | None,
) -> None:
    previous = base.walk("VALARM") if base is not None else []
    for alarm in previous:
        if never_fires(alarm):
            component.add_component(alarm)
    if minutes is None or (start is None and end is None):
        return
    exact = False
    for alarm in previous:
        if never_fires(alarm):
            continue
        at = alarm_minutes(alarm, start, end, zone)
        if X_ALARM in alarm or at is None or at > minutes or (at == minutes and exact):
            continue
        exact = exact or at == minutes
        component.add_component(alarm)
    if not exact:
        alarm = Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", subject or "Reminder")
        alarm.add(X_ALARM, "TRUE")
        if start is not None:
            alarm.add("TRIGGER", timedelta(minutes=-minutes))
        else:
            alarm.add("TRIGGER", timedelta(minutes=-minutes), parameters={"RELATED": "END"})
        component.add_component(alarm)
