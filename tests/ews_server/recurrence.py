"""Expands an EWS t:Recurrence into occurrence start times, as Exchange does for a recurring master.

The series repeats the master's local wall-clock start (in its StartTimeZone) on each date of the
pattern, from the range's StartDate. Regeneration patterns (tasks) have no fixed dates: not expanded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil import rrule
from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

from .xmlns import Element, local, t

_DAYS = {
    "Monday": [rrule.MO],
    "Tuesday": [rrule.TU],
    "Wednesday": [rrule.WE],
    "Thursday": [rrule.TH],
    "Friday": [rrule.FR],
    "Saturday": [rrule.SA],
    "Sunday": [rrule.SU],
    "Day": [rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU],
    "Weekday": [rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR],
    "WeekendDay": [rrule.SA, rrule.SU],
}
_INDEX = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
# Bound for series without an end: enough for any test, and keeps expansion cheap.
MAX_OCCURRENCES = 1000


def _text(elem: Element, name: str) -> str:
    """Text of a child; "" when absent (the schema already required the ones that must be there)."""
    return (elem.findtext(t(name)) or "").strip()


def _date(text: str) -> date:
    # xs:date may carry a zone offset ("2030-01-07Z", "2030-01-07+01:00"); the date is what counts.
    return date.fromisoformat(text[:10])


def zone(ms_id: str | None) -> ZoneInfo:
    return ZoneInfo(MS_TIMEZONE_TO_IANA_MAP.get(ms_id or "", "UTC"))


def expand(recurrence: Element, start_utc: datetime, tz: ZoneInfo) -> list[datetime] | None:
    """UTC start of every occurrence (at most MAX_OCCURRENCES), or None for an unexpandable pattern."""
    pattern, boundary = recurrence[0], recurrence[1]
    kind = local(pattern)
    interval = int(_text(pattern, "Interval") or 1)
    days = [d for name in _text(pattern, "DaysOfWeek").split() for d in _DAYS[name]]
    index = _INDEX.get(_text(pattern, "DayOfWeekIndex"))
    month = _text(pattern, "Month")
    kwargs: dict = {"interval": interval}
    if kind == "DailyRecurrence":
        freq = rrule.DAILY
    elif kind == "WeeklyRecurrence":
        freq, kwargs["byweekday"] = rrule.WEEKLY, days
        first_day = _text(pattern, "FirstDayOfWeek")
        if first_day:
            kwargs["wkst"] = _DAYS[first_day][0]
    elif kind == "AbsoluteMonthlyRecurrence":
        freq, kwargs["bymonthday"] = rrule.MONTHLY, int(_text(pattern, "DayOfMonth"))
    elif kind == "RelativeMonthlyRecurrence":
        freq, kwargs["byweekday"], kwargs["bysetpos"] = rrule.MONTHLY, days, index
    elif kind == "AbsoluteYearlyRecurrence":
        freq, kwargs["interval"] = rrule.YEARLY, 1
        kwargs["bymonthday"], kwargs["bymonth"] = int(_text(pattern, "DayOfMonth")), _MONTHS.index(month) + 1
    elif kind == "RelativeYearlyRecurrence":
        freq, kwargs["interval"] = rrule.YEARLY, 1
        kwargs["byweekday"], kwargs["bysetpos"], kwargs["bymonth"] = days, index, _MONTHS.index(month) + 1
    else:
        return None
    wall = start_utc.astimezone(tz).time().replace(tzinfo=None)
    first_date = _date(_text(boundary, "StartDate"))
    count = MAX_OCCURRENCES
    if local(boundary) == "NumberedRecurrence":
        count = min(count, int(_text(boundary, "NumberOfOccurrences")))
    if local(boundary) == "EndDateRecurrence":
        kwargs["until"] = datetime.combine(_date(_text(boundary, "EndDate")), time(23, 59, 59))
    rule = rrule.rrule(freq, dtstart=datetime.combine(first_date, wall), count=count, **kwargs)
    return [naive.replace(tzinfo=tz).astimezone(UTC) for naive in rule]


def is_bounded(recurrence: Element) -> bool:
    return local(recurrence[1]) != "NoEndRecurrence"


def parse_dt(text: str | None) -> datetime:
    if not text:
        raise ValueError("an empty xs:dateTime")
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_utc(value: datetime) -> datetime:
    """Any aware datetime (exchangelib's EWSDateTime too, which refuses astimezone(timezone.utc))."""
    return datetime.fromtimestamp(value.timestamp(), UTC)


def format_dt(value: datetime) -> str:
    return to_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(delta: timedelta) -> str:
    """xs:duration as Exchange writes it: P1DT2H30M, PT1H, PT0S."""
    seconds = int(delta.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    clock = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if v)
    out = "P" + (f"{days}D" if days else "")
    return out + ("T" + clock if clock else ("" if days else "T0S"))
