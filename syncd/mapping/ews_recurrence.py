"""Outlook recurrence (:mod:`syncd.mapping.outlook_recurrence`) <-> exchangelib's pattern classes.

What converts, and why the rest is refused, is documented in :mod:`~syncd.mapping.outlook_recurrence`;
this module only spells the result the way EWS does. EWS's yearly patterns have no interval, so every n
years becomes every 12n months from the start month (at most 99 months, EWS's monthly limit).

Exceptions: EWS keeps deleted and modified occurrences as separate state of the series; they cannot be
written with CreateItem/UpdateItem of the master. :func:`occurrence_changes` lists, as plain data, what
the connector must do to occurrences after writing the master.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

import structlog
from exchangelib.ewsdatetime import EWSDate
from exchangelib.fields import (
    EXTRA_WEEKDAY_OPTIONS,
    MONTHS,
    WEEK_NUMBERS,
    WEEKDAY_NAMES,
    WEEKDAYS,
)
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    Pattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    TaskRecurrence,
    WeeklyPattern,
)

from syncd.mapping import outlook_recurrence as outlook
from syncd.mapping.outlook_recurrence import (
    ALL_DAYS,
    DAYS,
    ORDINALS,
    WEEKDAY_SET,
    WEEKEND_SET,
    OccurrenceChange,
    OutlookPattern,
    OutlookRange,
    OutlookRecurrence,
    PatternType,
    UnsupportedRecurrence,
)
from syncd.model import Activity, Moment
from syncd.model import Recurrence as DomainRecurrence

__all__ = [
    "OccurrenceChange",
    "UnsupportedRecurrence",
    "from_ews_recurrence",
    "occurrence_changes",
    "recurrence_key",
    "to_ews_recurrence",
]

log = structlog.get_logger(__name__)

#: EWS Day/Weekday/WeekendDay <-> the day set they stand for
_EXTRA_DAY_SETS = {"Day": ALL_DAYS, "Weekday": WEEKDAY_SET, "WeekendDay": WEEKEND_SET}


# --- RRULE -> EWS ------------------------------------------------------------------------------------


def to_ews_recurrence(
    rule: str, dtstart: Moment, zone: ZoneInfo, *, task: bool = False, item: str = ""
) -> Recurrence:
    """The exchangelib recurrence for ``rule`` starting at ``dtstart``, or :class:`UnsupportedRecurrence`."""
    try:
        rec = outlook.to_outlook(rule, dtstart, zone)
        pattern = _ews_pattern(rule, rec.pattern)
    except UnsupportedRecurrence as exc:
        log.warning("ews.recurrence.unsupported", item=item, rule=rule, reason=exc.reason)
        raise UnsupportedRecurrence(item, rule, exc.reason) from None
    cls = TaskRecurrence if task else Recurrence
    return cls(pattern=pattern, boundary=_boundary(rec.range))


def _ews_pattern(rule: str, p: OutlookPattern) -> Pattern:
    if p.type == "daily":
        return DailyPattern(interval=p.interval)
    if p.type == "weekly":
        return WeeklyPattern(
            interval=p.interval, weekdays=[DAYS.index(d) + 1 for d in p.days],
            first_day_of_week=DAYS.index(p.first_day_of_week) + 1,
        )
    if p.type in ("absoluteYearly", "relativeYearly") and p.interval > 1:
        # EWS yearly patterns have no interval; every n years is every 12n months from the start month.
        outlook.limit(rule, 12 * p.interval, 99)
        monthly: PatternType = "absoluteMonthly" if p.type == "absoluteYearly" else "relativeMonthly"
        every = OutlookPattern(monthly, 12 * p.interval, p.days, day_of_month=p.day_of_month, index=p.index)
        return _ews_pattern(rule, every)
    if p.type == "absoluteMonthly":
        return AbsoluteMonthlyPattern(interval=p.interval, day_of_month=p.day_of_month)
    if p.type == "absoluteYearly":
        return AbsoluteYearlyPattern(day_of_month=p.day_of_month, month=p.month)
    weekday, week_number = _ews_weekday(p), ORDINALS.index(p.index) + 1
    if p.type == "relativeMonthly":
        return RelativeMonthlyPattern(interval=p.interval, weekday=weekday, week_number=week_number)
    return RelativeYearlyPattern(weekday=weekday, week_number=week_number, month=p.month)


def _ews_weekday(p: OutlookPattern) -> int:
    """exchangelib's 1-based WEEKDAYS value: a day, or Day/Weekday/WeekendDay for a set of days."""
    if len(p.days) == 1:
        return DAYS.index(p.days[0]) + 1
    name = next(n for n, days in _EXTRA_DAY_SETS.items() if days == frozenset(p.days))
    return WEEKDAYS.index(name) + 1


def _boundary(r: OutlookRange) -> NumberedPattern | EndDatePattern | NoEndPattern:
    start = _ews_date(r.start)
    if r.type == "numbered":
        return NumberedPattern(start=start, number=r.count)
    if r.type == "endDate" and r.end is not None:
        return EndDatePattern(start=start, end=_ews_date(r.end))
    return NoEndPattern(start=start)


def _ews_date(value: date) -> EWSDate:
    return EWSDate(value.year, value.month, value.day)


# --- EWS -> RRULE ------------------------------------------------------------------------------------


def _index(value: object, names: Sequence[str]) -> int:
    """exchangelib hands enum values back as names or 1-based numbers; this gives the 0-based index."""
    if isinstance(value, int):
        return value - 1
    return list(names).index(str(value))


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        # exchangelib parses a zone-less "2030-01-07" as UTC midnight; the date part is what EWS meant.
        return value.date()
    assert isinstance(value, date)
    return value


def from_ews_recurrence(rec: Recurrence, dtstart: Moment, zone: ZoneInfo, *, item: str = "") -> str:
    """The RRULE (without ``RRULE:``) of an EWS recurrence whose first occurrence is ``dtstart``."""
    try:
        pattern = _outlook_pattern(rec.pattern)
    except UnsupportedRecurrence as exc:
        log.warning("ews.recurrence.unsupported", item=item, pattern=str(rec.pattern), reason=exc.reason)
        raise UnsupportedRecurrence(item, str(rec.pattern), exc.reason) from None
    return outlook.from_outlook(OutlookRecurrence(pattern, _outlook_range(rec.boundary)), dtstart, zone)


def recurrence_key(rec: Recurrence | None) -> object:
    """What a recurrence means, independent of how exchangelib parsed it (names or numbers, dates or
    midnight datetimes), so an unchanged pattern is never rewritten (rewriting drops its exceptions)."""
    if rec is None:
        return None
    try:
        pattern: object = _outlook_pattern(rec.pattern)
    except UnsupportedRecurrence:
        pattern = repr(rec.pattern)
    return pattern, _outlook_range(rec.boundary) if rec.boundary is not None else None


def _outlook_range(boundary: object) -> OutlookRange:
    start = _as_date(getattr(boundary, "start", None))
    if isinstance(boundary, NumberedPattern):
        return OutlookRange("numbered", start, count=boundary.number)
    if isinstance(boundary, EndDatePattern):
        return OutlookRange("endDate", start, end=_as_date(boundary.end))
    return OutlookRange("noEnd", start)


def _outlook_pattern(pattern: Pattern) -> OutlookPattern:
    if isinstance(pattern, DailyPattern):
        return OutlookPattern("daily", interval=pattern.interval)
    if isinstance(pattern, WeeklyPattern):
        return OutlookPattern(
            "weekly", interval=pattern.interval,
            days=tuple(DAYS[_index(d, WEEKDAY_NAMES)] for d in pattern.weekdays),
            first_day_of_week=DAYS[_index(pattern.first_day_of_week or 1, WEEKDAY_NAMES)],
        )
    if isinstance(pattern, AbsoluteMonthlyPattern):
        return OutlookPattern("absoluteMonthly", interval=pattern.interval, day_of_month=pattern.day_of_month)
    if isinstance(pattern, RelativeMonthlyPattern):
        days, index = _relative(pattern.weekday, pattern.week_number)
        return OutlookPattern("relativeMonthly", interval=pattern.interval, days=days, index=index)
    if isinstance(pattern, AbsoluteYearlyPattern):
        month = _index(pattern.month, MONTHS) + 1
        return OutlookPattern("absoluteYearly", day_of_month=pattern.day_of_month, month=month)
    if isinstance(pattern, RelativeYearlyPattern):
        days, index = _relative(pattern.weekday, pattern.week_number)
        return OutlookPattern("relativeYearly", days=days, index=index, month=_index(pattern.month, MONTHS) + 1)
    raise outlook.unsupported(str(pattern), f"{type(pattern).__name__} (task regeneration) has no RRULE form")


def _relative(weekday: object, week_number: object) -> tuple[tuple[str, ...], int]:
    ordinal = ORDINALS[_index(week_number, WEEK_NUMBERS)]
    wd = _index(weekday, WEEKDAYS)
    if wd < 7:
        return (DAYS[wd],), ordinal
    chosen = _EXTRA_DAY_SETS[EXTRA_WEEKDAY_OPTIONS[wd - 7]]
    return tuple(d for d in DAYS if d in chosen), ordinal


# --- exceptions of a series --------------------------------------------------------------------------


def occurrence_changes(
    activity: Activity, current: DomainRecurrence | None = None, shown: Activity | None = None,
    exceptions: Collection[datetime] = (),
) -> list[OccurrenceChange]:
    """:func:`syncd.mapping.outlook_recurrence.occurrence_changes` for EWS: get each occurrence by
    ``index`` (``master.occurrence(index)``), then ``DeleteItem`` it or ``UpdateItem`` the fields given."""
    return outlook.occurrence_changes(activity, current, service="ews", shown=shown, exceptions=exceptions)
