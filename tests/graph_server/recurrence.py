"""patternedRecurrence expanded into occurrence start times, with dateutil as Outlook counts them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from dateutil import rrule

from .errors import bad_request

_DAYS = {
    "monday": rrule.MO, "tuesday": rrule.TU, "wednesday": rrule.WE, "thursday": rrule.TH,
    "friday": rrule.FR, "saturday": rrule.SA, "sunday": rrule.SU,
}
_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}


def _days(pattern: dict[str, Any]) -> list[rrule.weekday]:
    days = pattern.get("daysOfWeek") or []
    if not days:
        raise bad_request(f"Recurrence pattern '{pattern.get('type')}' requires daysOfWeek.")
    return [_DAYS[d] for d in days]


def rule(recurrence: dict[str, Any], first_time: time, tz: tzinfo) -> rrule.rrule:
    """The dateutil rule of a patternedRecurrence, in local (naive) wall time of the event's zone."""
    pattern, rng = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind = pattern.get("type")
    interval = int(pattern.get("interval") or 1)
    if interval < 1:
        raise bad_request("The recurrence pattern interval must be at least 1.")
    try:
        start_date = date.fromisoformat(rng["startDate"])
    except (KeyError, TypeError, ValueError) as err:
        raise bad_request("The recurrence range must have a valid startDate.") from err
    args: dict[str, Any] = {"interval": interval, "dtstart": datetime.combine(start_date, first_time)}
    week_start = pattern.get("firstDayOfWeek")
    if week_start:
        args["wkst"] = _DAYS[week_start]
    index = _INDEX.get(pattern.get("index") or "first", 1)
    if kind == "daily":
        freq = rrule.DAILY
    elif kind == "weekly":
        freq, args["byweekday"] = rrule.WEEKLY, _days(pattern)
    elif kind == "absoluteMonthly":
        freq, args["bymonthday"] = rrule.MONTHLY, int(pattern.get("dayOfMonth") or 0)
    elif kind == "relativeMonthly":
        freq, args["byweekday"], args["bysetpos"] = rrule.MONTHLY, _days(pattern), index
    elif kind == "absoluteYearly":
        freq, args["bymonth"], args["bymonthday"] = rrule.YEARLY, int(pattern.get("month") or 0), int(
            pattern.get("dayOfMonth") or 0
        )
    elif kind == "relativeYearly":
        freq, args["bymonth"] = rrule.YEARLY, int(pattern.get("month") or 0)
        args["byweekday"], args["bysetpos"] = _days(pattern), index
    else:
        raise bad_request(f"Unsupported recurrence pattern type '{kind}'.")
    if kind in ("absoluteMonthly", "absoluteYearly") and not 1 <= args["bymonthday"] <= 31:
        raise bad_request("The recurrence pattern dayOfMonth must be between 1 and 31.")
    if kind in ("absoluteYearly", "relativeYearly") and not 1 <= args["bymonth"] <= 12:
        raise bad_request("The recurrence pattern month must be between 1 and 12.")
    if freq in (rrule.MONTHLY, rrule.YEARLY) and interval > 1:
        # Outlook counts the interval from the first occurrence, dateutil from the start date's month
        # or year: every 2 years on 3 February from 1 December 2026 is 2027, 2029, ... in Outlook.
        first = rrule.rrule(freq, **{**args, "interval": 1})[0]
        args["dtstart"] = first
    range_type = rng.get("type")
    if range_type == "endDate":
        try:
            end = date.fromisoformat(rng["endDate"])
        except (KeyError, TypeError, ValueError) as err:
            raise bad_request("The recurrence range of type endDate must have a valid endDate.") from err
        if end < start_date:
            raise bad_request("The recurrence range endDate is before its startDate.")
        args["until"] = datetime.combine(end, time.max)
    elif range_type == "numbered":
        count = int(rng.get("numberOfOccurrences") or 0)
        if count < 1:
            raise bad_request("The recurrence range numberOfOccurrences must be at least 1.")
        args["count"] = count
    elif range_type != "noEnd":
        raise bad_request(f"Unsupported recurrence range type '{range_type}'.")
    return rrule.rrule(freq, **args)


def starts(
    recurrence: dict[str, Any], first_local: datetime, tz: tzinfo, until: datetime, limit: int = 5000
) -> list[datetime]:
    """UTC starts of the series' occurrences up to `until` (UTC), at most `limit`."""
    found: list[datetime] = []
    for local in rule(recurrence, first_local.time(), tz):
        instant = local.replace(tzinfo=tz).astimezone(UTC)
        if instant > until or len(found) >= limit:
            break
        found.append(instant)
    return found


def series_start(recurrence: dict[str, Any], first_local: datetime, tz: tzinfo) -> datetime | None:
    """The first occurrence's local start (Exchange moves the master's start there)."""
    for local in rule(recurrence, first_local.time(), tz):
        return local
    return None

