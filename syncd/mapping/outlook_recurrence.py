"""RFC 5545 RRULE <-> Outlook's recurrence model (pattern + range), exactly or not at all.

Exchange keeps one recurrence model, spoken by EWS (``DailyRecurrence``, ``EndDateRecurrence``...) and by
Microsoft Graph (``patternedRecurrence``). This module converts RRULEs to and from that model as plain
data (:class:`OutlookRecurrence`); :mod:`syncd.mapping.ews_recurrence` and :mod:`syncd.mapping.graph`
only translate it into their protocol's spelling.

Outlook expresses fewer schedules than RRULE. A rule is converted only when the Outlook pattern yields
the very same occurrences; anything else raises :class:`UnsupportedRecurrence`, so the engine records
the activity as not syncable to Exchange instead of writing a different schedule.

What converts (``n`` in 1..4 or -1, INTERVAL limits as in Exchange: daily 999, weekly/monthly/yearly 99):

==========================================================  =============================================
RRULE                                                       Outlook pattern
==========================================================  =============================================
DAILY;INTERVAL=n                                            daily
DAILY;BYDAY=<days> (INTERVAL 1)                             weekly, interval 1
WEEKLY;INTERVAL=n;BYDAY=<days>;WKST=<d>                     weekly (first day of week = WKST)
MONTHLY;BYMONTHDAY=d (d <= 28) or none (DTSTART day <= 28)  absoluteMonthly d
MONTHLY;BYMONTHDAY=-1                                       absoluteMonthly 31 (Outlook: last day)
MONTHLY;BYMONTHDAY=28,29[,30];BYSETPOS=-1                   absoluteMonthly 29 [30]
MONTHLY;BYDAY=nXX  or  BYDAY=XX;BYSETPOS=n                  relativeMonthly XX, n
MONTHLY;BYDAY=MO,TU,WE,TH,FR / SA,SU / all;BYSETPOS=n       relativeMonthly weekdays/weekend days/days
YEARLY with one BYMONTH and a day as for MONTHLY            absoluteYearly / relativeYearly (interval n)
COUNT / UNTIL / neither                                     numbered / endDate / noEnd range
==========================================================  =============================================

EWS's yearly patterns have no interval (Graph's do), so :mod:`~syncd.mapping.ews_recurrence` writes a
yearly interval n as the monthly pattern of interval 12n; both forms read back to rules with the same
occurrences.

Not convertible (examples): several ordinals in BYDAY (``1MO,3MO``), 5th or -2nd weekdays, several
BYMONTHDAY or BYMONTH values, month days 29-31 without BYSETPOS (RFC 5545 skips short months, Outlook
moves to the month's last day), BYHOUR/BYMINUTE/BYSECOND/BYWEEKNO/BYYEARDAY, FREQ=HOURLY/MINUTELY/
SECONDLY, COUNT above 999, and a DTSTART that is not itself an occurrence of the rule (RFC 5545 counts
it, Outlook would not).

Range: start and end are dates in the item's start zone. UNTIL is an instant, so the end date is the
last local date whose occurrence (at the series' wall-clock time) is not after UNTIL; inbound, UNTIL is
that date at the series' wall-clock time, in UTC (a DATE for all-day series).

Exceptions: Exchange keeps deleted and modified occurrences as separate state of the series; they
cannot be written with the master. :func:`occurrence_changes` lists, as plain data, what a connector
must do to occurrences after writing the master (see there). Those changes set an occurrence's times,
never its all-day flag, so a timed series with one occurrence made all-day, or an all-day series with one
given its own times, is refused (:func:`one_rule`).
"""

from __future__ import annotations

import calendar
import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog

from syncd.errors import ItemError
from syncd.mapping.occurrences import (
    MAX_INSTANCES,
    Budget,
    BudgetSpent,
    dtstart_is_instance,
    rule_instances,
)
from syncd.model import Activity, Moment, Override, Sensitivity, ShowAs
from syncd.model import Recurrence as DomainRecurrence
from syncd.store.rules import day_occurrence, timed_occurrence

log = structlog.get_logger(__name__)

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WEEKDAY_SET = frozenset(DAYS[:5])
WEEKEND_SET = frozenset(DAYS[5:])
ALL_DAYS = frozenset(DAYS)
ORDINALS = (1, 2, 3, 4, -1)
"""The weeks of a month Outlook can pick: first..fourth and last."""
_SUPPORTED_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}

PatternType = Literal["daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"]
RangeType = Literal["noEnd", "endDate", "numbered"]


class UnsupportedRecurrence(ItemError):
    """An RRULE Outlook cannot express exactly (or a pattern syncd does not read, e.g. task regeneration)."""

    def __init__(self, item: str, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(item, "RRULE", f"recurrence {rule!r} cannot be expressed exactly: {reason}")


def one_rule(activity: Activity) -> str:
    """The series' one RRULE: an Exchange series has one pattern, no added dates and changes per occurrence."""
    rec = activity.recurrence
    assert rec is not None
    if rec.rdates or not rec.rrule:
        raise UnsupportedRecurrence(activity.id, rec.rrule, "Exchange cannot add single dates (RDATE) to a series")
    if rec.extra_rrules:
        raise UnsupportedRecurrence(activity.id, rec.rrule, "Exchange cannot combine several recurrence rules")
    if any(o.this_and_future for o in rec.overrides):
        raise UnsupportedRecurrence(
            activity.id, rec.rrule, "Exchange changes occurrences one by one and cannot hold a change to this and "
            "every later occurrence (RANGE=THISANDFUTURE), which syncd keeps as one for a series without end (or "
            "with more later occurrences than it lists); the item is left alone there",
        )
    if any(day_occurrence(o.start, activity.all_day) for o in rec.overrides):
        # MAPI can mark an exception all-day, but syncd changes an occurrence's times only (see
        # occurrence_changes): written, it would show that day's occurrence at the series' time of day.
        raise ItemError(
            activity.id, "recurrence.overrides", "an occurrence of a timed series made all-day cannot be written "
            "to Exchange, where syncd sets an occurrence's times but not its all-day flag; the item is left alone "
            "there rather than shown as a timed occurrence",
        )
    if any(timed_occurrence(o.start, activity.all_day) for o in rec.overrides):
        # The reverse: the occurrence would keep the series' all-day flag and show as whole days.
        raise ItemError(
            activity.id, "recurrence.overrides", "an occurrence of an all-day series given its own times cannot be "
            "written to Exchange, where syncd sets an occurrence's times but not its all-day flag; the item is left "
            "alone there rather than shown as a whole day",
        )
    return rec.rrule


@dataclass(frozen=True, slots=True)
class OutlookPattern:
    """One recurrence pattern, in Graph's names (EWS's differ only in spelling).

    ``days`` are RRULE day codes: the days of a weekly pattern, or the set of days a relative pattern
    picks its ``index``-th from (one day, all days, weekdays or weekend days). ``index`` is 1..4 or -1
    (last), ``month`` 1..12; fields a type does not use keep their defaults.
    """

    type: PatternType
    interval: int = 1
    days: tuple[str, ...] = ()
    first_day_of_week: str = "MO"
    day_of_month: int = 0
    month: int = 0
    index: int = 0


@dataclass(frozen=True, slots=True)
class OutlookRange:
    type: RangeType
    start: date
    end: date | None = None
    count: int = 0


@dataclass(frozen=True, slots=True)
class OutlookRecurrence:
    pattern: OutlookPattern
    range: OutlookRange


@dataclass(frozen=True, slots=True)
class _DaySpec:
    """Which day of a month a monthly/yearly rule picks."""

    month_day: int | None = None
    clamped: bool = False
    """``month_day`` means "that day, or the month's last day if shorter" (Outlook's own meaning)."""
    days: tuple[str, ...] = ()
    ordinal: int = 0


# --- RRULE -> Outlook --------------------------------------------------------------------------------


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


def unsupported(rule: str, reason: str) -> UnsupportedRecurrence:
    """The error without an item, for the caller to re-raise with its item (and log)."""
    return UnsupportedRecurrence("", rule, reason)


def to_outlook(rule: str, dtstart: Moment, zone: ZoneInfo) -> OutlookRecurrence:
    """The Outlook recurrence for ``rule`` starting at ``dtstart``, or :class:`UnsupportedRecurrence`
    (without an item: callers re-raise it with theirs)."""
    try:
        parts = parse_rrule(rule)
        # Not next(iter(rrulestr(...))): a rule that never produces (BYMONTH=2;BYMONTHDAY=30) would
        # search up to the year 9999 for that first instance.
        starts_series = dtstart_is_instance(rule, dateutil_start(dtstart, zone))
    except (ValueError, TypeError) as exc:
        raise unsupported(rule, f"malformed rule ({exc})") from None
    start = local_start(dtstart, zone)
    if not starts_series:
        raise unsupported(rule, "DTSTART is not an occurrence of the rule (RFC 5545 counts it, Outlook would not)")
    unknown = set(parts) - _SUPPORTED_PARTS
    if unknown:
        raise unsupported(rule, f"Outlook has no equivalent of {', '.join(sorted(unknown))}")
    start_date = start.date() if isinstance(start, datetime) else start
    pattern = _pattern(rule, parts, start_date)
    return OutlookRecurrence(pattern=pattern, range=_range(rule, parts, start, zone))


def dateutil_start(dtstart: Moment, zone: ZoneInfo) -> datetime:
    if isinstance(dtstart, datetime):
        return dtstart.astimezone(zone)
    return datetime.combine(dtstart, time())


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _pattern(rule: str, parts: dict[str, str], start: date) -> OutlookPattern:
    freq = parts["FREQ"]
    interval = int(parts.get("INTERVAL", "1"))
    byday = _split(parts.get("BYDAY"))
    by_month = _split(parts.get("BYMONTH"))
    if interval < 1:
        raise unsupported(rule, "INTERVAL must be positive")
    if freq == "DAILY":
        if parts.keys() & {"BYMONTHDAY", "BYMONTH", "BYSETPOS"}:
            raise unsupported(rule, "DAILY with BYMONTHDAY/BYMONTH/BYSETPOS")
        if byday:
            if interval != 1:
                raise unsupported(rule, "DAILY with BYDAY and INTERVAL > 1")
            return OutlookPattern("weekly", days=_plain_days(rule, byday))
        limit(rule, interval, 999)
        return OutlookPattern("daily", interval=interval)
    if freq == "WEEKLY":
        if parts.keys() & {"BYMONTHDAY", "BYMONTH", "BYSETPOS"}:
            raise unsupported(rule, "WEEKLY with BYMONTHDAY/BYMONTH/BYSETPOS")
        limit(rule, interval, 99)
        days = _plain_days(rule, byday) if byday else (DAYS[start.weekday()],)
        wkst = parts.get("WKST", "MO")
        if wkst not in DAYS:
            raise unsupported(rule, f"WKST={wkst}")
        return OutlookPattern("weekly", interval=interval, days=days, first_day_of_week=wkst)
    if freq == "MONTHLY":
        if by_month:
            raise unsupported(rule, "MONTHLY with BYMONTH")
        if interval == 1 and byday and all(d in DAYS for d in byday) and not parts.keys() & {"BYMONTHDAY", "BYSETPOS"}:
            # Every Tuesday of every month is every Tuesday: the weekly pattern gives the same occurrences.
            return OutlookPattern("weekly", days=_plain_days(rule, byday))
        limit(rule, interval, 99)
        spec = _day_spec(rule, parts, start)
        if spec.month_day is not None:
            if not spec.clamped and spec.month_day > 28:
                raise unsupported(rule, f"month day {spec.month_day} is skipped in short months by RFC 5545")
            return OutlookPattern("absoluteMonthly", interval=interval, day_of_month=spec.month_day)
        return OutlookPattern("relativeMonthly", interval=interval, days=spec.days, index=spec.ordinal)
    if freq == "YEARLY":
        if len(by_month) > 1:
            raise unsupported(rule, "several BYMONTH values")
        if not by_month and parts.keys() & {"BYDAY", "BYMONTHDAY", "BYSETPOS"}:
            raise unsupported(rule, "YEARLY with BYDAY/BYMONTHDAY but no BYMONTH")
        limit(rule, interval, 99)
        month = int(by_month[0]) if by_month else start.month
        spec = _day_spec(rule, parts, start)
        if spec.month_day is not None:
            if not spec.clamped and spec.month_day > _min_days(month):
                raise unsupported(rule, f"day {spec.month_day} does not exist in every month {month}")
            return OutlookPattern("absoluteYearly", interval=interval, day_of_month=spec.month_day, month=month)
        return OutlookPattern("relativeYearly", interval=interval, days=spec.days, index=spec.ordinal, month=month)
    raise unsupported(rule, f"FREQ={freq}")


def limit(rule: str, interval: int, maximum: int) -> None:
    if interval > maximum:
        raise unsupported(rule, f"interval {interval} exceeds Exchange's maximum of {maximum}")


def _plain_days(rule: str, byday: list[str]) -> tuple[str, ...]:
    if any(d not in DAYS for d in byday):
        raise unsupported(rule, "BYDAY with ordinals in a daily or weekly rule")
    return tuple(d for d in DAYS if d in byday)


def _day_spec(rule: str, parts: dict[str, str], start: date) -> _DaySpec:
    byday = _split(parts.get("BYDAY"))
    month_days = _split(parts.get("BYMONTHDAY"))
    setpos = _split(parts.get("BYSETPOS"))
    if byday and month_days:
        raise unsupported(rule, "BYDAY together with BYMONTHDAY")
    if month_days:
        days = sorted(int(d) for d in month_days)
        if not setpos and len(days) == 1:
            if days[0] == -1:
                return _DaySpec(month_day=31, clamped=True)
            if 1 <= days[0] <= 31:
                return _DaySpec(month_day=days[0])
        if setpos == ["-1"] and days in ([28, 29], [28, 29, 30], [28, 29, 30, 31]):
            return _DaySpec(month_day=days[-1], clamped=True)
        raise unsupported(rule, "several month days, or a month day Outlook cannot pick")
    if byday:
        if setpos:
            if len(setpos) != 1 or int(setpos[0]) not in ORDINALS:
                raise unsupported(rule, f"BYSETPOS={','.join(setpos)}")
            if any(d not in DAYS for d in byday):
                raise unsupported(rule, "BYSETPOS with ordinal BYDAY")
            chosen = frozenset(byday)
            if len(chosen) != 1 and chosen not in (ALL_DAYS, WEEKDAY_SET, WEEKEND_SET):
                raise unsupported(rule, "BYSETPOS over a set of days other than all/weekdays/weekend")
            return _DaySpec(days=tuple(d for d in DAYS if d in chosen), ordinal=int(setpos[0]))
        if len(byday) != 1:
            raise unsupported(rule, "several BYDAY values in a monthly or yearly rule")
        ordinal, day = byday[0][:-2], byday[0][-2:]
        if day not in DAYS or not ordinal or int(ordinal) not in ORDINALS:
            raise unsupported(rule, f"BYDAY={byday[0]} (Outlook knows 1st-4th and last weekdays of a month)")
        return _DaySpec(days=(day,), ordinal=int(ordinal))
    if setpos:
        raise unsupported(rule, "BYSETPOS without BYDAY/BYMONTHDAY")
    return _DaySpec(month_day=start.day)


def _min_days(month: int) -> int:
    return 28 if month == 2 else calendar.monthrange(2001, month)[1]


def _max_days(month: int) -> int:
    return calendar.monthrange(2000, month)[1]


def _range(rule: str, parts: dict[str, str], start: datetime | date, zone: ZoneInfo) -> OutlookRange:
    start_date = start.date() if isinstance(start, datetime) else start
    if "COUNT" in parts and "UNTIL" in parts:
        raise unsupported(rule, "COUNT and UNTIL together")
    if "COUNT" in parts:
        count = int(parts["COUNT"])
        if not 1 <= count <= 999:
            raise unsupported(rule, f"COUNT={count} (Exchange allows 1..999)")
        return OutlookRange("numbered", start_date, count=count)
    if "UNTIL" in parts:
        return OutlookRange("endDate", start_date, end=_end_date(_parse_until(parts["UNTIL"], zone), start, zone))
    return OutlookRange("noEnd", start_date)


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


# --- Outlook -> RRULE --------------------------------------------------------------------------------


def from_outlook(rec: OutlookRecurrence, dtstart: Moment, zone: ZoneInfo) -> str:
    """The RRULE (without ``RRULE:``) of a recurrence whose first occurrence is ``dtstart``."""
    rule = rule_parts(rec.pattern)
    if rec.range.type == "numbered":
        rule.append(f"COUNT={rec.range.count}")
    elif rec.range.type == "endDate" and rec.range.end is not None:
        end = rec.range.end
        start = local_start(dtstart, zone)
        if isinstance(start, datetime):
            until = datetime.combine(end, start.timetz().replace(tzinfo=None), tzinfo=zone)
            rule.append("UNTIL=" + until.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
        else:
            rule.append("UNTIL=" + end.strftime("%Y%m%d"))
    return ";".join(rule)


def rule_parts(pattern: OutlookPattern) -> list[str]:
    """The RRULE parts (without a range) of a pattern; :class:`UnsupportedRecurrence` for a day set
    Outlook's relative patterns cannot hold."""
    interval = [f"INTERVAL={pattern.interval}"] if pattern.interval != 1 else []
    kind = pattern.type
    if kind == "daily":
        return ["FREQ=DAILY", *interval]
    if kind == "weekly":
        week_start = [f"WKST={pattern.first_day_of_week}"] if pattern.first_day_of_week != "MO" else []
        return ["FREQ=WEEKLY", *interval, "BYDAY=" + ",".join(pattern.days), *week_start]
    if kind == "absoluteMonthly":
        return ["FREQ=MONTHLY", *interval, *_month_day(pattern.day_of_month, None)]
    if kind == "relativeMonthly":
        return ["FREQ=MONTHLY", *interval, *_relative_day(pattern)]
    if kind == "absoluteYearly":
        return ["FREQ=YEARLY", *interval, f"BYMONTH={pattern.month}", *_month_day(pattern.day_of_month, pattern.month)]
    return ["FREQ=YEARLY", *interval, f"BYMONTH={pattern.month}", *_relative_day(pattern)]


def _month_day(day: int, month: int | None) -> list[str]:
    """Outlook's "day d, or the month's last day if shorter" as RFC 5545 month days."""
    shortest = _min_days(month) if month else 28
    longest = _max_days(month) if month else 31
    if day <= shortest:
        return [f"BYMONTHDAY={day}"]
    if day >= longest:
        return ["BYMONTHDAY=-1"]
    return ["BYMONTHDAY=" + ",".join(str(d) for d in range(shortest, day + 1)), "BYSETPOS=-1"]


def _relative_day(pattern: OutlookPattern) -> list[str]:
    if pattern.index not in ORDINALS:
        raise unsupported(str(pattern), f"week index {pattern.index}")
    if len(pattern.days) == 1:
        return [f"BYDAY={pattern.index}{pattern.days[0]}"]
    if frozenset(pattern.days) not in (ALL_DAYS, WEEKDAY_SET, WEEKEND_SET):
        raise unsupported(str(pattern), "the n-th of a set of days other than all/weekdays/weekend")
    return ["BYDAY=" + ",".join(d for d in DAYS if d in pattern.days), f"BYSETPOS={pattern.index}"]


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
    status: str | None = None
    """The CRM status of the occurrence (a cancelled one is shown free, see the mapping's status table)."""
    reminder: tuple[int | None] | None = None
    """``(minutes,)``: the occurrence's reminder (``(None,)``: it rings none). Like ``sensitivity`` and
    ``show_as``, set when the occurrence has its own, or to the series' to undo one it had."""
    sensitivity: Sensitivity | None = None
    show_as: ShowAs | None = None
    series_look: bool = False
    """Its own show-as is undone: it shows the series' ``show_as`` if set, else the free/busy of ``status``
    (the series'; ``None``: the default status's), which must then be written although it is ``None``."""


def occurrence_changes(
    activity: Activity, current: DomainRecurrence | None = None, *, service: str, shown: Activity | None = None,
    exceptions: Collection[datetime] = (),
) -> list[OccurrenceChange]:
    """Deletions and modifications of occurrences that make the Exchange series match ``activity``.

    Writing a master writes only its pattern; Exchange keeps deleted and modified occurrences as
    results of separate operations on occurrences. So after writing the master the connector applies
    these changes, in order: it finds the occurrence (by ``index`` in EWS, by ``original_start`` among
    Graph's instances), then deletes it (``delete``) or updates the fields given. ``current`` is the
    series as last read from Exchange; pass ``None`` when the pattern itself was (re)written, because
    Exchange drops all exceptions then. Changes already present in ``current`` are left out. An
    occurrence ``current`` has an override for and ``activity`` neither overrides nor deletes any more
    is given the series' values back (Exchange keeps an exception until the pattern is rewritten, which
    would drop every other one). An EXDATE or override that is not an occurrence of the rule is skipped
    with a warning (logged as ``<service>.exdate.not_an_occurrence``).

    ``shown`` is the series as last read and ``exceptions`` the original starts of every occurrence
    Exchange holds as an exception, those too that show the series' values and so read as no override
    (one given back to the series). An exception keeps a value once written to it, also when the series
    changes that value later; so each value the series changed since ``shown`` is written again to the
    exceptions that follow the series in it.
    """
    rec = activity.recurrence
    if rec is None or activity.start is None:
        return []
    zone = ZoneInfo(activity.timezone or "UTC")
    have_deleted = set(current.exdates) if current else set()
    have_modified = set(current.overrides) if current else set()
    before = {_key(o.recurrence_id): o for o in current.overrides} if current else {}
    kept = {_key(o.recurrence_id) for o in rec.overrides} | {_key(d) for d in rec.exdates}
    # An override the CRM removed: an empty one, so that what the occurrence had of its own is undone.
    removed = tuple(Override(o.recurrence_id) for key, o in before.items() if key not in kept)
    moved_on = _series_changes(shown, activity) if shown is not None and current is not None else {}
    known = kept | {_key(o.recurrence_id) for o in removed}
    held = dict.fromkeys(_held(at, activity.start, zone) for at in exceptions) if moved_on else {}
    following = tuple(Override(moment) for moment in held if moment not in known)
    overrides = (*rec.overrides, *removed, *following)
    starts = _pattern_starts(rec.rrule, activity.start, zone, rec.exdates, overrides, activity.id)
    own = {_key(o.recurrence_id): o for o in rec.overrides}
    changes: list[OccurrenceChange] = []
    for exdate in rec.exdates:
        if exdate in have_deleted:
            continue
        index = starts.get(_key(exdate))
        if index is None:
            log.warning(f"{service}.exdate.not_an_occurrence", item=activity.id, exdate=str(exdate))
            continue
        changes.append(OccurrenceChange(original_start=exdate, index=index, delete=True))
    for override in overrides:
        key = _key(override.recurrence_id)
        # As Exchange has it: an override unchanged, or an exception following the series.
        unchanged = override in have_modified or key not in known
        if unchanged and not moved_on:
            continue
        index = starts.get(key)
        if index is None:
            log.warning(
                f"{service}.override.not_an_occurrence", item=activity.id, recurrence_id=str(override.recurrence_id)
            )
            continue
        if unchanged:
            change = OccurrenceChange(original_start=override.recurrence_id, index=index)
        else:
            change = _override_change(override, index, activity, before.get(key))
        if key in before or key in held:  # a new exception takes the series' values as they are now
            change = _follow(change, own.get(key), moved_on)
        if not unchanged or _writes(change):
            changes.append(change)
    return changes


def _held(at: datetime, dtstart: Moment, zone: ZoneInfo) -> Moment:
    """An exception's original start as the domain keys it: the instant, or the date of an all-day series
    (Exchange gives its midnight in the item's zone: the nearest one in the series' zone)."""
    if isinstance(dtstart, datetime):
        return at.astimezone(UTC)
    return (at.astimezone(zone) + timedelta(hours=12)).date()


def _series_changes(shown: Activity, series: Activity) -> dict[str, Any]:
    """The :class:`OccurrenceChange` fields an occurrence following the series is given, for each value the
    series has changed since it was last read (``shown``)."""
    out: dict[str, Any] = {}
    if shown.subject != series.subject:
        out["subject"] = series.subject
    if (shown.description or "") != (series.description or ""):
        out["description"] = series.description or ""
    if (shown.location or "") != (series.location or ""):
        out["location"] = series.location or ""
    if shown.reminder_minutes != series.reminder_minutes:
        out["reminder"] = (series.reminder_minutes,)
    if (shown.sensitivity or Sensitivity.NORMAL) != (series.sensitivity or Sensitivity.NORMAL):
        out["sensitivity"] = series.sensitivity or Sensitivity.NORMAL
    if (shown.show_as, shown.status) != (series.show_as, series.status):
        out.update(series_look=True, show_as=series.show_as, status=series.status if series.show_as is None else None)
    return out


def _follow(change: OccurrenceChange, own: Override | None, moved_on: dict[str, Any]) -> OccurrenceChange:
    """``change`` with the series' new values it does not set already, where the occurrence has none of its own."""
    mine = own or Override(change.original_start)
    following = {
        "subject": mine.subject is None,
        "description": mine.description is None,
        "location": mine.location is None,
        "reminder": mine.reminder_minutes is None and not mine.reminder_off,
        "sensitivity": mine.sensitivity is None,
        "series_look": mine.show_as is None and mine.status is None,
    }
    look = change.series_look or change.show_as is not None or change.status is not None
    updates = {
        name: value for name, value in moved_on.items()
        if following["series_look" if name in ("show_as", "status") else name]
        and (not look if name in ("series_look", "show_as", "status") else getattr(change, name) is None)
    }
    return dataclasses.replace(change, **updates)


def _writes(change: OccurrenceChange) -> bool:
    """Whether the change sets anything on its occurrence."""
    values = (change.start, change.end, change.subject, change.description, change.location, change.status,
              change.reminder, change.sensitivity, change.show_as)
    return change.delete or change.series_look or any(v is not None for v in values)


def _override_change(override: Override, index: int, series: Activity, before: Override | None) -> OccurrenceChange:
    """``before``: the occurrence as last read. What it has of its own is written; what it had and no
    longer has is written back to the series' value (Exchange keeps a value once set on an occurrence); the
    rest is left alone, so that it keeps following the series."""
    had = before or Override(override.recurrence_id)
    start, end = override.start, override.end
    if start is None and had.start is not None:
        start = override.recurrence_id
    if end is None and (start is not None or had.end is not None):
        # The series' length from its own start (the domain's meaning of an override without an end).
        end = (start or override.recurrence_id) + _length(series)
    subject, description, location = override.subject, override.description, override.location
    if subject is None and had.subject is not None:
        subject = series.subject
    if description is None and had.description is not None:
        description = series.description or ""
    if location is None and had.location is not None:
        location = series.location or ""
    reminder: tuple[int | None] | None = None
    if override.reminder_off or override.reminder_minutes is not None:
        reminder = (override.reminder_minutes,)
    elif had.reminder_off or had.reminder_minutes is not None:
        reminder = (series.reminder_minutes,)
    sensitivity = override.sensitivity
    if sensitivity is None and had.sensitivity is not None:
        sensitivity = series.sensitivity or Sensitivity.NORMAL
    show_as, status = override.show_as, override.status
    # Its own status showed as that status's free/busy, kept by the exception like a show-as of its own.
    undone = show_as is None and status is None and (had.show_as is not None or had.status is not None)
    if undone:
        # The series' show-as, else the free/busy the series' status shows.
        show_as, status = series.show_as, series.status if series.show_as is None else None
    return OccurrenceChange(
        series_look=undone,
        reminder=reminder,
        sensitivity=sensitivity,
        show_as=show_as,
        original_start=override.recurrence_id,
        index=index,
        start=start,
        end=end,
        subject=subject,
        description=description,
        location=location,
        status=status,
    )


def _length(series: Activity) -> timedelta:
    end = series.effective_end
    if series.start is None or end is None or isinstance(end, datetime) != isinstance(series.start, datetime):
        return timedelta(0)
    return end - series.start


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
        for i, occ in enumerate(rule_instances(rule, dateutil_start(dtstart, zone), Budget()), start=1):
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
