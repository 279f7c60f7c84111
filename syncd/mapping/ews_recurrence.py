"""RFC 5545 RRULE <-> EWS recurrence (pattern + boundary), exactly or not at all.

EWS expresses fewer schedules than RRULE. A rule is converted only when the EWS pattern yields the very
same occurrences; anything else raises :class:`UnsupportedRecurrence` (and logs a warning), so the
engine records the activity as not syncable to Exchange instead of writing a different schedule.

What converts (``n`` in 1..4 or -1, INTERVAL limits as in EWS: daily 999, weekly/monthly 99):

==========================================================  =============================================
RRULE                                                       EWS pattern
==========================================================  =============================================
DAILY;INTERVAL=n                                            DailyRecurrence
DAILY;BYDAY=<days> (INTERVAL 1)                             WeeklyRecurrence, interval 1
WEEKLY;INTERVAL=n;BYDAY=<days>;WKST=<d>                     WeeklyRecurrence (FirstDayOfWeek = WKST)
MONTHLY;BYMONTHDAY=d (d <= 28) or none (DTSTART day <= 28)  AbsoluteMonthlyRecurrence d
MONTHLY;BYMONTHDAY=-1                                       AbsoluteMonthlyRecurrence 31 (EWS: last day)
MONTHLY;BYMONTHDAY=28,29[,30];BYSETPOS=-1                   AbsoluteMonthlyRecurrence 29 [30]
MONTHLY;BYDAY=nXX  or  BYDAY=XX;BYSETPOS=n                  RelativeMonthlyRecurrence XX, n
MONTHLY;BYDAY=MO,TU,WE,TH,FR / SA,SU / all;BYSETPOS=n       RelativeMonthlyRecurrence Weekday/WeekendDay/Day
YEARLY with one BYMONTH and a day as for MONTHLY            Absolute/RelativeYearlyRecurrence
YEARLY;INTERVAL=n (n <= 8)                                  the monthly pattern with interval 12n
COUNT / UNTIL / neither                                     Numbered / EndDate / NoEnd boundary
==========================================================  =============================================

Not convertible (examples): several ordinals in BYDAY (``1MO,3MO``), 5th or -2nd weekdays, several
BYMONTHDAY or BYMONTH values, month days 29-31 without BYSETPOS (RFC 5545 skips short months, EWS moves
to the month's last day), BYHOUR/BYMINUTE/BYSECOND/BYWEEKNO/BYYEARDAY, FREQ=HOURLY/MINUTELY/SECONDLY,
COUNT above 999, and a DTSTART that is not itself an occurrence of the rule (RFC 5545 counts it, EWS
would not).

Boundaries: EWS StartDate/EndDate are dates in the item's start zone. UNTIL is an instant, so the end
date is the last local date whose occurrence (at the series' wall-clock time) is not after UNTIL;
inbound, UNTIL is that date at the series' wall-clock time, in UTC (a DATE for all-day series).

Exceptions: EWS keeps deleted and modified occurrences as separate state of the series; they cannot be
written with CreateItem/UpdateItem of the master. :func:`occurrence_changes` lists, as plain data, what
the connector must do to occurrences after writing the master (see there).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
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

from syncd.errors import ItemError
from syncd.mapping.occurrences import (
    MAX_INSTANCES,
    Budget,
    BudgetSpent,
    dtstart_is_instance,
    rule_instances,
)
from syncd.model import Activity, Moment, Override
from syncd.model import Recurrence as DomainRecurrence

log = structlog.get_logger(__name__)

_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_WEEKDAY_SET = frozenset(_DAYS[:5])
_WEEKEND_SET = frozenset(_DAYS[5:])
_ALL_DAYS = frozenset(_DAYS)
#: RRULE ordinal <-> EWS DayOfWeekIndex (First..Fourth, Last)
_ORDINAL_TO_INDEX = {1: 0, 2: 1, 3: 2, 4: 3, -1: 4}
_INDEX_TO_ORDINAL = {v: k for k, v in _ORDINAL_TO_INDEX.items()}
#: EWS Day/Weekday/WeekendDay <-> the BYDAY set they stand for
_EXTRA_DAY_SETS = {"Day": _ALL_DAYS, "Weekday": _WEEKDAY_SET, "WeekendDay": _WEEKEND_SET}
_SUPPORTED_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}


class UnsupportedRecurrence(ItemError):
    """An RRULE EWS cannot express exactly (or an EWS pattern syncd does not read, e.g. task regeneration)."""

    def __init__(self, item: str, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(item, "RRULE", f"recurrence {rule!r} cannot be expressed exactly: {reason}")


@dataclass(frozen=True, slots=True)
class _DaySpec:
    """Which day of a month a monthly/yearly rule picks."""

    month_day: int | None = None
    clamped: bool = False
    """``month_day`` means "that day, or the month's last day if shorter" (EWS's own meaning)."""
    weekday: int | None = None
    """Index into exchangelib's WEEKDAYS (0..6 Monday..Sunday, 7 Day, 8 Weekday, 9 WeekendDay)."""
    week_index: int | None = None
    """Index into WEEK_NUMBERS (0..3 First..Fourth, 4 Last)."""

    def weekday_of_week(self) -> tuple[int, int]:
        """(weekday, week_number) as EWS's relative patterns count them, from 1."""
        if self.weekday is None or self.week_index is None:
            raise TypeError("the day spec names a month day, not a weekday of a week")
        return self.weekday + 1, self.week_index + 1


# --- RRULE -> EWS ------------------------------------------------------------------------------------


def parse_rrule(rule: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for chunk in rule.strip().removeprefix("RRULE:").split(";"):
        if not chunk:
            continue
        key, sep, value = chunk.partition("=")
        if not sep or key.upper() in parts:
            raise ValueError(f"malformed rule part {chunk!r}")
        parts[key.upper()] = value.upper()
    if "FREQ" not in parts:
        raise ValueError("FREQ is missing")
    return parts


def local_start(dtstart: Moment, zone: ZoneInfo) -> datetime | date:
    """The series start as wall-clock time in the item's zone (dates stay dates)."""
    if isinstance(dtstart, datetime):
        return dtstart.astimezone(zone)
    return dtstart


def to_ews_recurrence(
    rule: str, dtstart: Moment, zone: ZoneInfo, *, task: bool = False, item: str = ""
) -> Recurrence:
    """The exchangelib recurrence for ``rule`` starting at ``dtstart``, or :class:`UnsupportedRecurrence`."""
    try:
        return _to_ews(rule, dtstart, zone, task)
    except UnsupportedRecurrence as exc:
        log.warning("ews.recurrence.unsupported", item=item, rule=rule, reason=exc.reason)
        raise UnsupportedRecurrence(item, rule, exc.reason) from None


def _unsupported(rule: str, reason: str) -> UnsupportedRecurrence:
    return UnsupportedRecurrence("", rule, reason)


def _to_ews(rule: str, dtstart: Moment, zone: ZoneInfo, task: bool) -> Recurrence:
    try:
        parts = parse_rrule(rule)
        # Not next(iter(rrulestr(...))): a rule that never produces (BYMONTH=2;BYMONTHDAY=30) would
        # search up to the year 9999 for that first instance.
        starts_series = dtstart_is_instance(rule, _dateutil_start(dtstart, zone))
    except (ValueError, TypeError) as exc:
        raise _unsupported(rule, f"malformed rule ({exc})") from None
    start = local_start(dtstart, zone)
    if not starts_series:
        raise _unsupported(rule, "DTSTART is not an occurrence of the rule (RFC 5545 counts it, EWS would not)")
    unknown = set(parts) - _SUPPORTED_PARTS
    if unknown:
        raise _unsupported(rule, f"EWS has no equivalent of {', '.join(sorted(unknown))}")
    start_date = start.date() if isinstance(start, datetime) else start
    pattern = _pattern(rule, parts, start_date)
    boundary = _boundary(rule, parts, start, zone)
    cls = TaskRecurrence if task else Recurrence
    return cls(pattern=pattern, boundary=boundary)


def _dateutil_start(dtstart: Moment, zone: ZoneInfo) -> datetime:
    if isinstance(dtstart, datetime):
        return dtstart.astimezone(zone)
    return datetime.combine(dtstart, time())


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _pattern(rule: str, parts: dict[str, str], start: date) -> Pattern:
    freq = parts["FREQ"]
    interval = int(parts.get("INTERVAL", "1"))
    byday = _split(parts.get("BYDAY"))
    by_month = _split(parts.get("BYMONTH"))
    if interval < 1:
        raise _unsupported(rule, "INTERVAL must be positive")
    if freq == "DAILY":
        if parts.keys() & {"BYMONTHDAY", "BYMONTH", "BYSETPOS"}:
            raise _unsupported(rule, "DAILY with BYMONTHDAY/BYMONTH/BYSETPOS")
        if byday:
            if interval != 1:
                raise _unsupported(rule, "DAILY with BYDAY and INTERVAL > 1")
            return WeeklyPattern(interval=1, weekdays=_plain_days(rule, byday), first_day_of_week=1)
        _limit(rule, interval, 999)
        return DailyPattern(interval=interval)
    if freq == "WEEKLY":
        if parts.keys() & {"BYMONTHDAY", "BYMONTH", "BYSETPOS"}:
            raise _unsupported(rule, "WEEKLY with BYMONTHDAY/BYMONTH/BYSETPOS")
        _limit(rule, interval, 99)
        days = _plain_days(rule, byday) if byday else [start.isoweekday()]
        wkst = parts.get("WKST", "MO")
        if wkst not in _DAYS:
            raise _unsupported(rule, f"WKST={wkst}")
        return WeeklyPattern(interval=interval, weekdays=days, first_day_of_week=_DAYS.index(wkst) + 1)
    if freq == "MONTHLY":
        if by_month:
            raise _unsupported(rule, "MONTHLY with BYMONTH")
        _limit(rule, interval, 99)
        return _monthly(rule, interval, _day_spec(rule, parts, start), start)
    if freq == "YEARLY":
        if len(by_month) > 1:
            raise _unsupported(rule, "several BYMONTH values")
        if not by_month and parts.keys() & {"BYDAY", "BYMONTHDAY", "BYSETPOS"}:
            raise _unsupported(rule, "YEARLY with BYDAY/BYMONTHDAY but no BYMONTH")
        month = int(by_month[0]) if by_month else start.month
        spec = _day_spec(rule, parts, start)
        if spec.month_day is not None and not spec.clamped and spec.month_day > _min_days(month):
            raise _unsupported(rule, f"day {spec.month_day} does not exist in every month {month}")
        if interval > 1:
            # EWS yearly patterns have no interval; every n years is every 12n months from the start month.
            _limit(rule, 12 * interval, 99)
            return _monthly(rule, 12 * interval, spec, start, yearly=True)
        if spec.month_day is not None:
            return AbsoluteYearlyPattern(day_of_month=spec.month_day, month=month)
        weekday, week_number = spec.weekday_of_week()
        return RelativeYearlyPattern(weekday=weekday, week_number=week_number, month=month)
    raise _unsupported(rule, f"FREQ={freq}")


def _monthly(rule: str, interval: int, spec: _DaySpec, start: date, yearly: bool = False) -> Pattern:
    if spec.month_day is not None:
        if not spec.clamped and spec.month_day > 28 and not yearly:
            raise _unsupported(rule, f"month day {spec.month_day} is skipped in short months by RFC 5545")
        return AbsoluteMonthlyPattern(interval=interval, day_of_month=spec.month_day)
    weekday, week_number = spec.weekday_of_week()
    return RelativeMonthlyPattern(interval=interval, weekday=weekday, week_number=week_number)


def _limit(rule: str, interval: int, maximum: int) -> None:
    if interval > maximum:
        raise _unsupported(rule, f"interval {interval} exceeds EWS's maximum of {maximum}")


def _plain_days(rule: str, byday: list[str]) -> list[int]:
    if any(d not in _DAYS for d in byday):
        raise _unsupported(rule, "BYDAY with ordinals in a daily or weekly rule")
    return sorted({_DAYS.index(d) + 1 for d in byday})


def _day_spec(rule: str, parts: dict[str, str], start: date) -> _DaySpec:
    byday = _split(parts.get("BYDAY"))
    month_days = _split(parts.get("BYMONTHDAY"))
    setpos = _split(parts.get("BYSETPOS"))
    if byday and month_days:
        raise _unsupported(rule, "BYDAY together with BYMONTHDAY")
    if month_days:
        days = sorted(int(d) for d in month_days)
        if not setpos and len(days) == 1:
            if days[0] == -1:
                return _DaySpec(month_day=31, clamped=True)
            if 1 <= days[0] <= 31:
                return _DaySpec(month_day=days[0])
        if setpos == ["-1"] and days in ([28, 29], [28, 29, 30], [28, 29, 30, 31]):
            return _DaySpec(month_day=days[-1], clamped=True)
        raise _unsupported(rule, "several month days, or a month day EWS cannot pick")
    if byday:
        if setpos:
            if len(setpos) != 1 or int(setpos[0]) not in _ORDINAL_TO_INDEX:
                raise _unsupported(rule, f"BYSETPOS={','.join(setpos)}")
            if any(d not in _DAYS for d in byday):
                raise _unsupported(rule, "BYSETPOS with ordinal BYDAY")
            chosen = frozenset(byday)
            if len(chosen) == 1:
                weekday = _DAYS.index(byday[0])
            else:
                names = [name for name, days in _EXTRA_DAY_SETS.items() if days == chosen]
                if not names:
                    raise _unsupported(rule, "BYSETPOS over a set of days other than all/weekdays/weekend")
                weekday = WEEKDAYS.index(names[0])
            return _DaySpec(weekday=weekday, week_index=_ORDINAL_TO_INDEX[int(setpos[0])])
        if len(byday) != 1:
            raise _unsupported(rule, "several BYDAY values in a monthly or yearly rule")
        ordinal, day = byday[0][:-2], byday[0][-2:]
        if day not in _DAYS or not ordinal or int(ordinal) not in _ORDINAL_TO_INDEX:
            raise _unsupported(rule, f"BYDAY={byday[0]} (EWS knows 1st-4th and last weekdays of a month)")
        return _DaySpec(weekday=_DAYS.index(day), week_index=_ORDINAL_TO_INDEX[int(ordinal)])
    if setpos:
        raise _unsupported(rule, "BYSETPOS without BYDAY/BYMONTHDAY")
    return _DaySpec(month_day=start.day)


def _min_days(month: int) -> int:
    return 28 if month == 2 else calendar.monthrange(2001, month)[1]


def _max_days(month: int) -> int:
    return calendar.monthrange(2000, month)[1]


def _boundary(rule: str, parts: dict[str, str], start: datetime | date, zone: ZoneInfo):
    start_date = _ews_date(start.date() if isinstance(start, datetime) else start)
    if "COUNT" in parts and "UNTIL" in parts:
        raise _unsupported(rule, "COUNT and UNTIL together")
    if "COUNT" in parts:
        count = int(parts["COUNT"])
        if not 1 <= count <= 999:
            raise _unsupported(rule, f"COUNT={count} (EWS allows 1..999)")
        return NumberedPattern(start=start_date, number=count)
    if "UNTIL" in parts:
        end = _end_date(_parse_until(parts["UNTIL"], zone), start, zone)
        return EndDatePattern(start=start_date, end=_ews_date(end))
    return NoEndPattern(start=start_date)


def _ews_date(value: date) -> EWSDate:
    return EWSDate(value.year, value.month, value.day)


def _parse_until(value: str, zone: ZoneInfo) -> datetime | date:
    if len(value) == 8:
        return datetime.strptime(value, "%Y%m%d").date()
    if value.endswith("Z"):
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=zone)


def _end_date(until: datetime | date, start: datetime | date, zone: ZoneInfo) -> date:
    """The last local date whose occurrence is not after UNTIL."""
    if not isinstance(start, datetime):
        return until.astimezone(zone).date() if isinstance(until, datetime) else until
    if not isinstance(until, datetime):
        until = datetime.combine(until, time(23, 59, 59), tzinfo=zone)
    day = until.astimezone(zone).date()
    if datetime.combine(day, start.timetz().replace(tzinfo=None), tzinfo=zone) > until:
        day -= timedelta(days=1)
    return day


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
    pattern, boundary = rec.pattern, rec.boundary
    try:
        rule = _rule_parts(pattern)
    except UnsupportedRecurrence as exc:
        log.warning("ews.recurrence.unsupported", item=item, pattern=str(pattern), reason=exc.reason)
        raise UnsupportedRecurrence(item, str(pattern), exc.reason) from None
    if isinstance(boundary, NumberedPattern):
        rule.append(f"COUNT={boundary.number}")
    elif isinstance(boundary, EndDatePattern):
        end = _as_date(boundary.end)
        start = local_start(dtstart, zone)
        if isinstance(start, datetime):
            until = datetime.combine(end, start.timetz().replace(tzinfo=None), tzinfo=zone)
            rule.append("UNTIL=" + until.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
        else:
            rule.append("UNTIL=" + end.strftime("%Y%m%d"))
    return ";".join(rule)


def recurrence_key(rec: Recurrence | None) -> object:
    """What a recurrence means, independent of how exchangelib parsed it (names or numbers, dates or
    midnight datetimes), so an unchanged pattern is never rewritten (rewriting drops its exceptions)."""
    if rec is None:
        return None
    try:
        pattern: object = tuple(_rule_parts(rec.pattern))
    except UnsupportedRecurrence:
        pattern = repr(rec.pattern)
    boundary = rec.boundary
    return (
        pattern,
        type(boundary).__name__,
        _as_date(boundary.start) if boundary is not None else None,
        getattr(boundary, "number", None),
        _as_date(boundary.end) if isinstance(boundary, EndDatePattern) else None,
    )


def _rule_parts(pattern: Pattern) -> list[str]:
    if isinstance(pattern, DailyPattern):
        return ["FREQ=DAILY", *_interval(pattern.interval)]
    if isinstance(pattern, WeeklyPattern):
        days = ",".join(_DAYS[_index(d, WEEKDAY_NAMES)] for d in pattern.weekdays)
        wkst = _DAYS[_index(pattern.first_day_of_week or 1, WEEKDAY_NAMES)]
        week_start = [f"WKST={wkst}"] if wkst != "MO" else []
        return ["FREQ=WEEKLY", *_interval(pattern.interval), f"BYDAY={days}", *week_start]
    if isinstance(pattern, AbsoluteMonthlyPattern):
        return ["FREQ=MONTHLY", *_interval(pattern.interval), *_month_day(pattern.day_of_month, None)]
    if isinstance(pattern, RelativeMonthlyPattern):
        return ["FREQ=MONTHLY", *_interval(pattern.interval), *_relative_day(pattern.weekday, pattern.week_number)]
    if isinstance(pattern, AbsoluteYearlyPattern):
        month = _index(pattern.month, MONTHS) + 1
        return ["FREQ=YEARLY", f"BYMONTH={month}", *_month_day(pattern.day_of_month, month)]
    if isinstance(pattern, RelativeYearlyPattern):
        month = _index(pattern.month, MONTHS) + 1
        return ["FREQ=YEARLY", f"BYMONTH={month}", *_relative_day(pattern.weekday, pattern.week_number)]
    raise _unsupported(str(pattern), f"{type(pattern).__name__} (task regeneration) has no RRULE form")


def _interval(interval: int) -> list[str]:
    return [f"INTERVAL={interval}"] if interval != 1 else []


def _month_day(day: int, month: int | None) -> list[str]:
    """EWS's "day d, or the month's last day if shorter" as RFC 5545 month days."""
    shortest = _min_days(month) if month else 28
    longest = _max_days(month) if month else 31
    if day <= shortest:
        return [f"BYMONTHDAY={day}"]
    if day >= longest:
        return ["BYMONTHDAY=-1"]
    return ["BYMONTHDAY=" + ",".join(str(d) for d in range(shortest, day + 1)), "BYSETPOS=-1"]


def _relative_day(weekday: object, week_number: object) -> list[str]:
    ordinal = _INDEX_TO_ORDINAL[_index(week_number, WEEK_NUMBERS)]
    wd = _index(weekday, WEEKDAYS)
    if wd < 7:
        return [f"BYDAY={ordinal}{_DAYS[wd]}"]
    days = _EXTRA_DAY_SETS[EXTRA_WEEKDAY_OPTIONS[wd - 7]]
    return ["BYDAY=" + ",".join(d for d in _DAYS if d in days), f"BYSETPOS={ordinal}"]


# --- exceptions of a series --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OccurrenceChange:
    """What the connector must do to one occurrence after it wrote the recurring master.

    ``original_start`` is the occurrence's start as the pattern generates it, ``index`` its 1-based
    position in the pattern (EWS ``OccurrenceItemId InstanceIndex``; deleted occurrences keep their
    index). ``delete`` means remove the occurrence (an EXDATE); otherwise the fields that are not
    ``None`` are set on it (``start``/``end`` as in the domain: aware datetimes, or dates for all-day).
    """

    original_start: Moment
    index: int
    delete: bool = False
    start: Moment | None = None
    end: Moment | None = None
    subject: str | None = None
    description: str | None = None
    location: str | None = None


def occurrence_changes(activity: Activity, current: DomainRecurrence | None = None) -> list[OccurrenceChange]:
    """Deletions and modifications of occurrences that make the EWS series match ``activity``.

    CreateItem/UpdateItem write only a master's pattern; EWS keeps DeletedOccurrences and
    ModifiedOccurrences as results of separate operations on occurrences. So after writing the master
    the connector applies these changes, in order: for each, get the occurrence by ``index``
    (``master.occurrence(index)``), then ``DeleteItem`` it (``delete``) or ``UpdateItem`` the fields
    given. ``current`` is the series as last read from Exchange (``ParsedEwsItem.activity.recurrence``);
    pass ``None`` when the pattern itself was (re)written, because Exchange drops all exceptions then.
    Changes already present in ``current`` are left out. An EXDATE or override that is not an
    occurrence of the rule is skipped with a warning.
    """
    rec = activity.recurrence
    if rec is None or activity.start is None:
        return []
    zone = ZoneInfo(activity.timezone or "UTC")
    starts = _pattern_starts(rec.rrule, activity.start, zone, rec.exdates, rec.overrides, activity.id)
    have_deleted = set(current.exdates) if current else set()
    have_modified = set(current.overrides) if current else set()
    changes: list[OccurrenceChange] = []
    for exdate in rec.exdates:
        if exdate in have_deleted:
            continue
        index = starts.get(_key(exdate))
        if index is None:
            log.warning("ews.exdate.not_an_occurrence", item=activity.id, exdate=str(exdate))
            continue
        changes.append(OccurrenceChange(original_start=exdate, index=index, delete=True))
    for override in rec.overrides:
        if override in have_modified:
            continue
        index = starts.get(_key(override.recurrence_id))
        if index is None:
            log.warning("ews.override.not_an_occurrence", item=activity.id, recurrence_id=str(override.recurrence_id))
            continue
        changes.append(_override_change(override, index))
    return changes


def _override_change(override: Override, index: int) -> OccurrenceChange:
    return OccurrenceChange(
        original_start=override.recurrence_id,
        index=index,
        start=override.start,
        end=override.end,
        subject=override.subject,
        description=override.description,
        location=override.location,
    )


def _key(moment: Moment) -> Moment:
    # Aware datetimes compare by instant; dates by value.
    return moment.astimezone(UTC) if isinstance(moment, datetime) else moment


def _pattern_starts(
    rule: str, dtstart: Moment, zone: ZoneInfo, exdates: Sequence[Moment], overrides: Sequence[Override], item: str
) -> dict[Moment, int]:
    """1-based index of each occurrence up to the last exdate/override that needs one.

    Exchange numbers occurrences from the series' start, so they are counted from there, at most
    :data:`~syncd.mapping.occurrences.MAX_INSTANCES` of them: an exception further out (or a rule that
    stops producing before it) refuses the item rather than leave that exception out on Exchange."""
    wanted = {_key(m) for m in exdates} | {_key(o.recurrence_id) for o in overrides}
    found: dict[Moment, int] = {}
    if not wanted:
        return found
    horizon = max(wanted, key=lambda k: k if isinstance(k, datetime) else datetime.combine(k, time(), UTC))
    try:
        for i, occ in enumerate(rule_instances(rule, _dateutil_start(dtstart, zone), Budget()), start=1):
            key: Moment = occ.astimezone(UTC) if isinstance(dtstart, datetime) else occ.date()
            if key in wanted:
                found[key] = i
            if len(found) == len(wanted) or key > horizon:
                break
    except BudgetSpent:
        raise ItemError(
            item, "EXDATE", f"an exception of the series lies beyond its first {MAX_INSTANCES} occurrences (or steps "
            f"of its rule {rule[:80]!r}); syncd cannot number it for Exchange, so the item is not written",
        ) from None
    return found
