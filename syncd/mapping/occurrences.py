"""Occurrences of an activity within a window, expanded lazily and at a bounded cost.

The activity is expanded from the same iCalendar form :func:`syncd.mapping.ical.to_ical` writes (DTSTART
in the activity's zone, RRULE, EXDATE, overrides), with the semantics of recurring-ical-events, which
CalDAV clients use and which this module called until expansion had to be bounded: DTSTART is an
occurrence unless it lies after UNTIL; EXDATE and RECURRENCE-ID match an occurrence by its UTC instant
or its wall-clock time; an occurrence lasts DTEND - DTSTART on the wall clock; "in the window" means
overlapping [start, end), or for an instant, starting in it. So the engine's "is any occurrence in
scope" agrees with what a calendar shows. A task is placed at its start, else its due moment.

Cost. A rule can describe a million occurrences (``FREQ=SECONDLY;COUNT=1000000``), never end
(``FREQ=SECONDLY``), or never produce one (``BYMONTH=2;BYMONTHDAY=30``: dateutil then searches up to
the year 9999 without yielding). Here the rule is walked lazily and only as far as the question
needs: :func:`has_occurrence` stops at the first occurrence in the window, :func:`occurrences` at the
window's end. A rule without COUNT is walked from just before the window, not from DTSTART (see
:func:`_fast_forward`), so an old or dense series costs what the window holds. Days no occurrence can
fall on are ruled out before dateutil walks at all (see :func:`_day_possible`). Whatever is left is
capped: at most :data:`MAX_INSTANCES` occurrences and :data:`MAX_STEPS` steps of the rule's walk per
question. A question the caps do not let us answer raises :class:`ExpansionLimit` (an
:class:`~syncd.errors.ItemError` naming the item and the rule), never a shorter or guessed answer: the
item is refused, not silently changed.
"""

from __future__ import annotations

import calendar
import heapq
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from typing import Any, Self

from dateutil.rrule import rrule, rrulestr
from icalendar import vRecur

from syncd.errors import ItemError
from syncd.mapping.ical_recurrence import day_end, instant_end, rrules_for, series_span
from syncd.mapping.ical_time import Zone, activity_zone, add_duration, align, before, in_zone, second_pass
from syncd.mapping.range_change import applied, occurrence_key
from syncd.model import Activity, Kind, Moment, Override
from syncd.store.rules import day_occurrence, timed_occurrence

MAX_INSTANCES = 20_000
"""Occurrences of one series examined to answer one question (those before the window count too).

Only a rule with COUNT is walked from DTSTART (the count starts there): a daily one from 1971 to a
window in 2026 needs 20,000. Any other rule is walked from just before the window, so the cap is about
what the window may hold: a daily, weekly or weekday series over a window of decades fits, every
minute of two weeks fits, every second of six hours does not. An examined occurrence costs 10-25
microseconds in dateutil (FREQ=SECONDLY being the dearest), so the cap bounds one item's check to
well under a second on the 2-core test machine."""

MAX_STEPS = 50_000
"""Steps of dateutil's walk per question: one per day, hour, minute or second the rule's frequency
moves by (more for BYHOUR/BYMINUTE/BYSECOND at the rule's own level), weighted by what dateutil does
per period (:data:`_STEP_WEIGHT`: a year filters 366 days).

A rule whose filters reject most periods walks many steps per occurrence, and one that rejects all
of them (BYSETPOS=6 of a month's Mondays, ``FREQ=HOURLY;INTERVAL=168;BYDAY=MO`` from a Tuesday) would
walk to the year 9999 without ever yielding, which no occurrence count can stop. A daily or longer
walk is also ended a period after the window (its steps say where it is); an hourly or finer one only
by this cap. A weighted step costs 3-7 microseconds, so the cap stops such a walk within about a
quarter of a second; ordinary rules need about one step per occurrence."""

_STEP_WEIGHT = {"YEARLY": 20, "MONTHLY": 4, "WEEKLY": 2}
"""Measured cost of one period relative to a day's (dateutil filters every day of a year or month)."""

_GREGORIAN_CYCLE = timedelta(days=146_097)
"""400 years: the calendar (leap years, weekdays, week numbers) repeats after it."""


class ExpansionLimit(ItemError):
    """Answering would take more than :data:`MAX_INSTANCES` occurrences or :data:`MAX_STEPS` steps."""


class BudgetSpent(Exception):
    """A :class:`Budget` ran out; callers turn it into an answer or an :class:`~syncd.errors.ItemError`."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(what)


@dataclass
class Budget:
    """What one question may still spend; ``instances_used`` and ``steps_used`` are for tests and bench."""

    instances: int = MAX_INSTANCES
    steps: int = MAX_STEPS
    instances_used: int = 0
    steps_used: int = 0

    def instance(self) -> None:
        self.instances_used += 1
        if self.instances_used > self.instances:
            raise BudgetSpent("instances")

    def step(self, weight: int = 1) -> None:
        self.steps_used += weight
        if self.steps_used > self.steps:
            raise BudgetSpent("steps")


class _PastHorizon(Exception):
    """dateutil's walk has gone past the last moment the caller wants instances for."""


class _CountedInterval(int):
    """An RRULE INTERVAL that charges a :class:`Budget` each time dateutil steps by it.

    dateutil checks UNTIL and COUNT only on instances it produces, and exposes no hook inside its walk,
    so a rule that produces nothing walks on to the year 9999. Every step of that walk adds or
    multiplies the interval (``year += interval``, ``self._interval * 7``, ``hour + interval``...):
    counting those operations bounds the walk without copying dateutil's iterator. For daily and
    longer periods a step is exactly one period, so the count also tells where the walk is, and
    ``periods`` ends it once it is past the moments wanted. The tests
    (``tests/mapping/test_runaway_rules.py``) fail if a dateutil release stops stepping this way.
    """

    budget: Budget
    weight: int
    periods: int | None

    def __new__(cls, value: int, budget: Budget, weight: int, periods: int | None) -> Self:
        counted = super().__new__(cls, value)
        counted.budget = budget
        counted.weight = weight
        counted.periods = periods
        return counted

    def _step(self) -> None:
        self.budget.step(self.weight)
        if self.periods is not None:
            self.periods -= 1
            if self.periods < 0:
                raise _PastHorizon

    def __add__(self, other: Any) -> Any:
        self._step()
        return int(self) + other

    def __radd__(self, other: Any) -> Any:
        self._step()
        return other + int(self)

    def __mul__(self, other: Any) -> Any:
        self._step()
        return int(self) * other

    __rmul__ = __mul__

    def __rfloordiv__(self, other: Any) -> Any:
        self._step()
        return other // int(self)


def rule_instances(
    rule: str, dtstart: datetime, budget: Budget, *, near: datetime | None = None, until: datetime | None = None
) -> Iterator[datetime]:
    """dateutil's instances of ``rule`` from ``dtstart``, lazily, charging ``budget`` for each instance
    and step; raises ``ValueError`` or ``TypeError`` for a malformed rule and :class:`BudgetSpent` when the
    budget is spent. ``near`` and ``until`` are comparable with ``dtstart``.

    With ``near``, instances well before it may be left out: a rule without COUNT is then walked from
    the start of a period shortly before ``near`` (see :func:`_fast_forward`), so a series started
    decades (or, for FREQ=SECONDLY, days) before the window costs what the window holds, not what lies
    before it. With ``until``, instances after it may be left out: a daily or longer rule ends once its
    walk is a period past ``until``, even if it never produced anything there."""
    parsed = rrulestr(rule, dtstart=dtstart)
    if not isinstance(parsed, rrule):
        raise TypeError("not a single recurrence rule")
    parts = {str(k).upper(): v for k, v in vRecur.from_ical(rule).items()}
    try:
        freq = _FREQS.index(str(parts["FREQ"][0]).upper())
        interval = int(parts.get("INTERVAL", [1])[0])
    except (KeyError, IndexError) as exc:
        raise ValueError(f"no usable FREQ ({exc})") from None
    start = dtstart
    if near is not None:
        parsed, start = _fast_forward(parsed, parts, freq, interval, dtstart, near)
    periods = None
    if until is not None and freq <= _DAILY:
        periods = _periods_until(freq, interval, start, until, _wkst(parts))
    parsed._interval = _CountedInterval(parsed._interval, budget, _STEP_WEIGHT.get(_FREQS[freq], 1), periods)
    try:
        for instance in parsed:
            budget.instance()
            yield instance
    except _PastHorizon:
        return


_FREQS = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY")
_DAILY = 3
_DAY_DEFAULT_BLOCKERS = ("BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY", "BYEASTER")


def _fast_forward(
    parsed: rrule, parts: dict[str, Any], freq: int, interval: int, dtstart: datetime, near: datetime
) -> tuple[rrule, datetime]:
    """The same rule started ``m * INTERVAL`` whole periods later, at the start of a period shortly
    before ``near``, and that start; ``parsed`` and ``dtstart`` when it cannot be (COUNT counts from
    DTSTART) or need not.

    Why the instances from the new start on are the same: dateutil walks naive wall-clock time period
    by period from DTSTART (the year, month, week from WKST, day, hour, minute or second holding it,
    then every INTERVAL-th one), and filters only inside a period. Moving DTSTART by whole INTERVALs of
    periods to a period's first moment keeps that lattice; what dateutil would take from DTSTART
    (BYMONTH/BYMONTHDAY for YEARLY, BYMONTHDAY for MONTHLY, the weekday for WEEKLY, the time of day
    below the rule's frequency) is passed explicitly so it is still taken from the original DTSTART.
    The new start lies before ``near``'s wall-clock time by a margin for the instants a wall clock maps
    out of order (a wall time in a DST gap is read with the offset before it): two days for daily and
    longer periods, where it costs a few periods; an hour plus the offset changes around ``near`` for
    hourly and shorter ones, where two days would be 172800 instances of FREQ=SECONDLY."""
    if "COUNT" in parts:
        return parsed, dtstart
    tz = dtstart.tzinfo
    wall = dtstart.replace(tzinfo=None)
    target = (near.astimezone(tz) if tz is not None and near.tzinfo is not None else near).replace(tzinfo=None)
    try:
        if freq <= _DAILY:
            target -= timedelta(days=2)
        else:
            jumps = _jumps(near, tz) if tz is not None and near.tzinfo is not None else timedelta()
            target -= timedelta(hours=1) + jumps
        start = _period_start(freq, interval, wall, target, _wkst(parts))
    except (OverflowError, ValueError):
        return parsed, dtstart
    if start is None or start <= wall:
        return parsed, dtstart
    defaults: dict[str, Any] = {}
    if not any(name in parts for name in _DAY_DEFAULT_BLOCKERS):
        if freq == 0:
            if "BYMONTH" not in parts:
                defaults["bymonth"] = wall.month
            defaults["bymonthday"] = wall.day
        elif freq == 1:
            defaults["bymonthday"] = wall.day
        elif freq == 2:
            defaults["byweekday"] = wall.weekday()
    for name, level, value in (("BYHOUR", 4, wall.hour), ("BYMINUTE", 5, wall.minute), ("BYSECOND", 6, wall.second)):
        if name not in parts and freq < level:
            defaults[name.lower()] = value
    moved = start.replace(tzinfo=tz)
    return parsed.replace(dtstart=moved, **defaults), moved


def _periods_until(freq: int, interval: int, start: datetime, until: datetime, wkst: int) -> int | None:
    """How many steps a daily or longer walk from ``start`` takes before its period begins after
    ``until`` (a day later, for the offset between a wall clock and the instant ``until`` names)."""
    wall = start.replace(tzinfo=None)
    try:
        end = (until.astimezone(start.tzinfo) if start.tzinfo and until.tzinfo else until).replace(tzinfo=None)
        end += timedelta(days=1)
    except OverflowError:
        return None
    if end <= wall:
        return 0
    if freq == 0:
        return (end.year - wall.year) // interval
    if freq == 1:
        return ((end.year - wall.year) * 12 + end.month - wall.month) // interval
    if freq == 2:
        week = wall.date() - timedelta(days=(wall.weekday() - wkst) % 7)
        return (end.date() - week).days // 7 // interval
    return (end.date() - wall.date()).days // interval


def _jumps(near: datetime, tz: tzinfo) -> timedelta:
    """How far the UTC offset moves within two days of ``near`` (a DST switch, a zone changing sides of
    the date line): the most a wall time can be out of order with its instant there."""
    offsets = [(near + timedelta(hours=12 * k)).astimezone(tz).utcoffset() or timedelta() for k in range(-4, 5)]
    return sum((abs(b - a) for a, b in pairwise(offsets)), timedelta())


def _period_start(freq: int, interval: int, wall: datetime, target: datetime, wkst: int) -> datetime | None:
    """The first moment of the last period ``m * interval`` periods after ``wall``'s that begins at or
    before ``target`` (all naive wall-clock), or ``None`` if that is ``wall``'s own period."""
    if target <= wall:
        return None
    if freq == 0:
        m = (target.year - wall.year) // interval
        return datetime(wall.year + m * interval, 1, 1) if m > 0 else None
    if freq == 1:
        months = (target.year - wall.year) * 12 + target.month - wall.month
        m = months // interval
        if m <= 0:
            return None
        index = wall.year * 12 + wall.month - 1 + m * interval
        return datetime(index // 12, index % 12 + 1, 1)
    if freq == 2:
        week = datetime.combine(wall.date() - timedelta(days=(wall.weekday() - wkst) % 7), time())
        m = (target - week).days // 7 // interval
        return week + timedelta(weeks=m * interval) if m > 0 else None
    if freq == 3:
        day = datetime.combine(wall.date(), time())
        m = (target - day).days // interval
        return day + timedelta(days=m * interval) if m > 0 else None
    unit = (timedelta(hours=1), timedelta(minutes=1), timedelta(seconds=1))[freq - 4]
    m = (target - wall) // (unit * interval)
    if m <= 0:
        return None
    moved = wall + unit * interval * m
    if freq == 4:
        return moved.replace(minute=0, second=0)
    if freq == 5:
        return moved.replace(second=0)
    return moved


def _wkst(parts: dict[str, Any]) -> int:
    """WKST as dateutil reads it: absent means ``calendar.firstweekday()``."""
    value = parts.get("WKST")
    if not value:
        return calendar.firstweekday()
    return _WEEKDAYS.index(str(value[0] if isinstance(value, list) else value).upper()[:2])


def dtstart_is_instance(rule: str, dtstart: datetime) -> bool:
    """Whether ``dtstart`` is itself an instance of ``rule`` (RFC 5545 counts it as the first either way).

    dateutil yields instances in order, never before ``dtstart``, and walks the period holding
    ``dtstart`` first: if ``dtstart`` is an instance it comes out before the first step, so one period
    settles the question, however rarely the rule produces later."""
    try:
        first = next(rule_instances(rule, dtstart, Budget(instances=1, steps=0)), None)
    except BudgetSpent:
        return False
    return first == dtstart


# --------------------------------------------------------------------------------------------- series


def occurrences(
    activity: Activity, start: Moment, end: Moment, budget: Budget | None = None
) -> list[tuple[Moment, Moment]]:
    """(start, end) of every occurrence overlapping [start, end), sorted; all-day ones as dates.

    Raises :class:`ExpansionLimit` when the rule needs more than the caps allow to list the window
    (e.g. a window holding more than :data:`MAX_INSTANCES` occurrences)."""
    series = _Series.of(activity)
    if series is None:
        return []
    window = _Window(_window(start), _window(end))
    found = list(series.between(window, budget or Budget(), first_only=False))
    found.sort(key=lambda item: (_sort_key(item[0][0]), item[1]))
    return [(_moment(s, activity), _moment(e, activity)) for (s, e), _ in found]


def has_occurrence(activity: Activity, start: Moment, end: Moment, budget: Budget | None = None) -> bool:
    """Whether any occurrence overlaps [start, end): ``bool(occurrences(...))`` at the cost of the first one.

    Raises :class:`ExpansionLimit` only if the caps are reached before the answer is known (the rule
    yields too many occurrences before the window, or walks too long without yielding one)."""
    series = _Series.of(activity)
    if series is None:
        return False
    window = _Window(_window(start), _window(end))
    return any(True for _ in series.between(window, budget or Budget(), first_only=True))


def _window(moment: Moment) -> datetime | date:
    return moment.astimezone(UTC) if isinstance(moment, datetime) else moment


def _moment(value: Moment, activity: Activity) -> Moment:
    if isinstance(value, datetime):
        return in_zone(value if value.tzinfo else value.replace(tzinfo=UTC), activity_zone(activity))
    return value


def _sort_key(moment: Moment) -> datetime:
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, time(), tzinfo=UTC)


_Time = datetime | date


def _comparable(*values: _Time) -> list[_Time]:
    """recurring-ical-events' ``make_comparable``: if any value is a date-time, dates become midnight in
    the zone of the first aware value (naive if none), and naive date-times get that zone."""
    if not any(isinstance(v, datetime) for v in values):
        return list(values)
    zone = next((v.tzinfo for v in values if isinstance(v, datetime) and v.tzinfo is not None), None)
    out: list[_Time] = []
    for value in values:
        moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
        if moment.tzinfo is None and zone is not None:
            moment = moment.replace(tzinfo=zone)
        out.append(moment)
    return out


def _as_datetime(value: _Time, zone: tzinfo | None) -> datetime:
    """recurring-ical-events' ``convert_to_datetime``."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        return value.replace(tzinfo=zone) if zone is not None else value
    return value if zone is not None else value.replace(tzinfo=None)


def _ids(moment: _Time) -> tuple[datetime, ...]:
    """recurring-ical-events' recurrence ids: the UTC instant and the wall-clock time, both naive."""
    if not isinstance(moment, datetime):
        return (datetime(moment.year, moment.month, moment.day),)
    if moment.tzinfo is None:
        return (moment,)
    return moment.astimezone(UTC).replace(tzinfo=None), moment.replace(tzinfo=None)


class _Window:
    """[start, end) as recurring-ical-events compares occurrences with it."""

    def __init__(self, start: _Time, end: _Time) -> None:
        self.start = start
        self.end = end
        self._aware = all(isinstance(v, datetime) and v.tzinfo is UTC for v in (start, end))

    def holds(self, first: _Time, last: _Time) -> bool:
        """recurring-ical-events' ``time_span_contains_event`` (stops exclusive, starts inclusive)."""
        begin: _Time
        finish: _Time
        if self._aware and isinstance(first, datetime) and first.tzinfo is not None and isinstance(last, datetime):
            # Instants, as an aware comparison would; one conversion each instead of one per comparison.
            span_start, span_stop = self.start, self.end
            begin, finish = first.astimezone(UTC), last.astimezone(UTC)
            if first == last:
                finish = begin
        else:
            span_start, span_stop, begin, finish = _comparable(self.start, self.end, first, last)
        if begin == finish:
            if span_start == span_stop:
                return begin == span_start
            return span_start <= begin < span_stop
        if span_start == span_stop:
            return begin <= span_start < finish
        return begin < span_stop and span_start < finish


@dataclass(frozen=True)
class _Override:
    ids: tuple[datetime, ...]
    start: _Time
    end: _Time
    order: int


@dataclass
class _Series:
    """One activity's series in the form recurring-ical-events computes with."""

    item: str
    rules: tuple[tuple[str, vRecur], ...]
    """Each RRULE's text and parts; their instances add up (RFC 5545 3.8.5.3)."""
    zone: tzinfo | None
    """The zone date-times are compared in; ``None`` for an all-day series."""
    first: datetime
    """DTSTART as dateutil walks from it (a date becomes naive midnight)."""
    duration: timedelta
    exact: bool
    """Occurrences last ``duration`` of elapsed time, not of the wall clock (see :meth:`_end`)."""
    dates: bool
    """DTSTART and DTEND are dates: occurrences are computed at midnight and given back as dates."""
    includes_start: bool
    rdates: list[datetime] = field(default_factory=list)
    """RDATE starts as dateutil's instances are given (a date as naive midnight), sorted."""
    exdate_ids: set[datetime] = field(default_factory=set)
    exdate_days: set[date] = field(default_factory=set)
    overrides: list[_Override] = field(default_factory=list)
    override_for: dict[datetime, _Override] = field(default_factory=dict)
    ranges: _Ranges | None = None
    """The kept RANGE=THISANDFUTURE overrides, which change the later occurrences too."""

    @classmethod
    def of(cls, activity: Activity) -> _Series | None:
        anchor = activity.start if activity.start is not None else activity.due
        if anchor is None:
            return None
        zone_name = activity_zone(activity)
        # Events and tasks expand the same way; a VEVENT skeleton avoids VTODO's DUE/DTSTART special cases.
        skeleton = activity.replace(kind=activity.kind if activity.is_event else Kind.APPOINTMENT, start=anchor,
                                    end=activity.end if activity.is_event else (activity.due or anchor), due=None)
        start = in_zone(anchor, zone_name)
        end = _raw_end(start, skeleton)
        rec = activity.recurrence
        recurs = rrules_for(skeleton, zone_name) if rec is not None else []
        exdates = [align(d, anchor, zone_name) for d in rec.exdates] if rec else []
        first_value, last_value = _comparable(start, end)
        if before(last_value, first_value):
            first_value, last_value = last_value, first_value
        zone = next((v.tzinfo for v in (start, end, *exdates) if isinstance(v, datetime) and v.tzinfo), None)
        first = _as_datetime(first_value, zone)
        last = _as_datetime(last_value, zone)
        # A start or end in the second pass of a repeated hour is written in UTC (see ical_time.written),
        # and a DTEND in another zone than DTSTART makes the length exact (RFC 5545 3.8.5.3).
        exact = second_pass(first) or second_pass(last)
        series = cls(
            item=activity.id,
            rules=tuple((recur.to_ical().decode("ascii"), recur) for recur in recurs),
            zone=zone,
            first=first,
            duration=last.astimezone(UTC) - first.astimezone(UTC) if exact else last - first,
            exact=exact,
            dates=not isinstance(first_value, datetime) and not isinstance(last_value, datetime),
            includes_start=True,
        )
        rdates = [in_zone(align(d, anchor, zone_name), zone_name) for d in rec.rdates] if rec else []
        series.rdates = sorted({_as_datetime(_comparable(first, d)[1], zone) for d in rdates})
        for exdate in exdates:
            series.exdate_ids.update(_ids(exdate))
            if not isinstance(exdate, datetime):
                series.exdate_days.add(exdate)
        until = recurs[0].get("UNTIL") if recurs and rec is not None and rec.rrule.strip() else None
        if until:
            later, limit = _comparable(first, until[0])
            series.includes_start = not later > limit
        span = series_span(skeleton)
        for order, override in enumerate(rec.overrides if rec else ()):
            rid = align(override.recurrence_id, anchor, zone_name)
            o_start: _Time
            o_end: _Time
            if day_occurrence(override.start, activity.all_day) and override.start is not None:
                # One occurrence of a timed series made all-day: its own days (DTSTART;VALUE=DATE).
                o_start, o_end = override.start, day_end(override.start, override.end)
            elif timed_occurrence(override.start, activity.all_day) and isinstance(override.start, datetime):
                # One occurrence of an all-day series given its own times (DTSTART;TZID=...), an instant
                # when it has no end.
                o_start, o_end = override.start, instant_end(override.start, override.end)
            else:
                moved = align(override.start, anchor, zone_name) if override.start is not None else rid
                o_start = in_zone(moved, zone_name)
                o_end = in_zone(override.end or add_duration(moved, span), zone_name)
            o_start, o_end = _comparable(o_start, o_end)
            if before(o_end, o_start):
                o_start, o_end = o_end, o_start
            entry = _Override(_ids(rid), o_start, o_end, order)
            for i in entry.ids:
                series.override_for.setdefault(i, entry)  # the first component for a RECURRENCE-ID wins
        series.overrides = sorted({o.order: o for o in series.override_for.values()}.values(), key=lambda o: o.order)
        series.ranges = _Ranges.of(skeleton, anchor, zone_name, series.duration)
        return series

    # -- expansion -------------------------------------------------------------------------------------

    def between(
        self, window: _Window, budget: Budget, *, first_only: bool
    ) -> Iterator[tuple[tuple[_Time, _Time], tuple[int, int]]]:
        """((start, end), sort tie-breaker) of the occurrences in ``window``; with ``first_only`` the
        overrides come first (they cost nothing to check), else in recurring-ical-events' order."""
        try:
            span_start, span_stop = _comparable(window.start, window.end)
        except TypeError:
            return
        if span_start > span_stop:
            return
        returned: set[int] = set()
        if first_only:
            for override in self._live_overrides():
                if window.holds(override.start, override.end):
                    yield (override.start, override.end), (1, override.order)
                    return
        index = 0
        try:
            for start in self._candidates(window, budget):
                index += 1
                if self.exdate_days and date(start.year, start.month, start.day) in self.exdate_days:
                    continue
                ids = _ids(start) if self.exdate_ids or self.override_for else ()
                if self.exdate_ids and self.exdate_ids.intersection(ids):
                    continue
                replaced = _get_any(self.override_for, ids) if self.override_for else None
                if replaced is not None:
                    if replaced.order in returned or first_only:
                        continue
                    returned.add(replaced.order)
                    if window.holds(replaced.start, replaced.end):
                        yield (replaced.start, replaced.end), (0, index)
                    continue
                begin = self._original(start)
                finish = self._original(self._end(start))
                if self.ranges is not None:
                    begin, finish = self.ranges.apply(begin, finish)
                if window.holds(begin, finish):
                    yield (begin, finish), (0, index)
        except BudgetSpent as exc:
            raise self._limit(exc.what, window) from None
        except (ValueError, TypeError) as exc:
            raise ItemError(self.item, "RRULE", f"invalid recurrence rule: {exc}") from None
        if not first_only:
            for override in self._live_overrides():
                if override.order not in returned and window.holds(override.start, override.end):
                    yield (override.start, override.end), (1, override.order)

    def _live_overrides(self) -> Iterator[_Override]:
        for override in self.overrides:
            if not self.exdate_ids.intersection(override.ids):
                yield override

    def _end(self, start: datetime) -> datetime:
        # A start in a repeated hour's second pass (an RDATE) is written in UTC: its end is exact too.
        if not self.exact and not second_pass(start):
            return start + self.duration  # on the wall clock, as recurring-ical-events does
        if start.tzinfo is None:
            return start + self.duration
        return (start.astimezone(UTC) + self.duration).astimezone(start.tzinfo)

    def _original(self, value: datetime) -> _Time:
        return value.date() if self.dates else value

    def _candidates(self, window: _Window, budget: Budget) -> Iterator[datetime]:
        """The series' starts recurring-ical-events would consider for ``window``: DTSTART, then the
        rule's instances from the first one at or after (window start - duration) to the first one
        after the window's end, as dateutil's ``between(inc=True)`` picks them."""
        earlier, later = (self.ranges.earlier, self.ranges.later) if self.ranges else (timedelta(), timedelta())
        low = _as_datetime(_earlier(window.start, self.duration + earlier), self.zone)
        high = _as_datetime(_earlier(window.end, -later), self.zone)
        emitted_start = False
        if self.includes_start and low <= self.first <= high:
            budget.instance()
            emitted_start = True
            yield self.first
        started = False
        previous = None
        for instance in heapq.merge(*self._instances(low, high, budget)):
            if instance > high:
                return
            if not started:
                if instance < low:
                    continue
                started = True
            # An instant two rules (or a rule and an RDATE) give is one occurrence (RFC 5545 3.8.5.2).
            if (emitted_start and instance == self.first) or instance == previous:
                continue
            previous = instance
            yield instance

    def _instances(self, low: datetime, high: datetime, budget: Budget) -> list[Iterator[datetime]]:
        """One sorted stream per RRULE whose days can fall in [low, high], and the RDATEs."""
        streams: list[Iterator[datetime]] = [iter(self.rdates)] if self.rdates else []
        for rule, recur in self.rules:
            if _day_possible(recur, _days(low, high)):
                streams.append(rule_instances(rule, self.first, budget, near=low, until=high))
        return streams

    def _limit(self, what: str, window: _Window) -> ExpansionLimit:
        cap = f"{MAX_INSTANCES} occurrences" if what == "instances" else f"{MAX_STEPS} steps of the rule"
        rules = " and ".join(rule for rule, _ in self.rules)
        return ExpansionLimit(
            self.item,
            "RRULE",
            f"recurrence rule {rules[:80]!r} needs more than {cap} to be checked against the sync window "
            f"{_text(window.start)}..{_text(window.end)} (syncd's cap per series); the item is left alone",
        )


@dataclass(frozen=True)
class _Ranges:
    """A series' kept RANGE=THISANDFUTURE overrides (``Override.this_and_future``): each makes every later
    occurrence what :func:`~syncd.mapping.range_change.applied` says, up to the next one's occurrence; an
    occurrence's own override wins (it is looked up first)."""

    skeleton: Activity
    zone: Zone
    span: timedelta
    keys: list[datetime]
    """The ranges' occurrences (:func:`~syncd.mapping.range_change.occurrence_key`), sorted."""
    changes: list[Override]
    earlier: timedelta
    """How much more than the series' length an occurrence under a range may start before a window it
    overlaps (its move later and its greater length), a day more for the offsets a DST change moves."""
    later: timedelta
    """How much an occurrence under a range may start before its own start (a move earlier), plus a day."""

    @classmethod
    def of(cls, skeleton: Activity, anchor: Moment, zone: Zone, duration: timedelta) -> _Ranges | None:
        rec = skeleton.recurrence
        kept = sorted(
            ((occurrence_key(rid), replace(o, recurrence_id=rid))
             for o in (rec.overrides if rec else ()) if o.this_and_future
             for rid in (in_zone(align(o.recurrence_id, anchor, zone), zone),)),
            key=lambda pair: pair[0],
        )
        if not kept:
            return None
        ranges = cls(skeleton, zone, series_span(skeleton), [k for k, _ in kept], [o for _, o in kept],
                     timedelta(), timedelta())
        shifts, lengths = [], []
        for change in ranges.changes:
            begin, end = ranges._times(change.recurrence_id, change)
            shifts.append(_elapsed(change.recurrence_id, begin))
            lengths.append(_elapsed(begin, end))
        slack = timedelta(days=1)
        earlier = max(timedelta(), *shifts) + max(timedelta(), max(lengths) - duration) + slack
        later = max(timedelta(), *(-s for s in shifts)) + slack
        return replace(ranges, earlier=earlier, later=later)

    def apply(self, begin: _Time, finish: _Time) -> tuple[_Time, _Time]:
        """The occurrence the series makes [``begin``, ``finish``) as the range before it changes it."""
        at = bisect_left(self.keys, occurrence_key(begin))
        if at == 0:
            return begin, finish
        return self._times(begin, self.changes[at - 1])

    def _times(self, rid: _Time, change: Override) -> tuple[_Time, _Time]:
        carried = applied(self.skeleton, change, rid)
        start = carried.start if carried.start is not None else rid
        end = carried.end if carried.end is not None else add_duration(start, self.span)
        start, end = _comparable(in_zone(start, self.zone), in_zone(end, self.zone))
        return (end, start) if before(end, start) else (start, end)


def _elapsed(first: _Time, last: _Time) -> timedelta:
    a, b = _comparable(first, last)
    return b - a  # type: ignore[operator]


def _raw_end(start: _Time, skeleton: Activity) -> _Time:
    """DTEND as write_schedule writes it, or what RFC 5545 3.6.1 implies without one."""
    if skeleton.end is not None and not (skeleton.all_day and skeleton.end == skeleton.start):
        return in_zone(skeleton.end, activity_zone(skeleton))
    if isinstance(start, datetime):
        return start
    return start + timedelta(days=1)


def _get_any(table: dict[datetime, _Override], keys: Iterable[datetime]) -> _Override | None:
    """recurring-ical-events' ``get_any``: the last key found wins."""
    found = None
    for key in keys:
        found = table.get(key, found)
    return found


def _earlier(value: _Time, delta: timedelta) -> _Time:
    # Subtracted, not added negated: a date minus hours stays that date, as in recurring-ical-events.
    try:
        return value - delta
    except OverflowError:
        return value


def _text(value: _Time) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M %Z").strip()
    return value.isoformat()


# ------------------------------------------------------------------------------------ day prescreen


_BYDAY = re.compile(r"^[+-]?\d*(MO|TU|WE|TH|FR|SA|SU)$")
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _days(low: datetime, high: datetime) -> tuple[date, date]:
    """The wall-clock days an instance between ``low`` and ``high`` can start on, a day of slack each side
    for the offsets dateutil's wall clock and the comparison's instants can differ by."""
    first = low.date() - timedelta(days=1) if low.date() > date.min else low.date()
    last = high.date() + timedelta(days=1) if high.date() < date.max else high.date()
    return first, min(last, first + _GREGORIAN_CYCLE)


def _day_possible(recur: vRecur, days: tuple[date, date]) -> bool:
    """Whether any day in ``days`` passes the rule's day filters (BYMONTH, BYMONTHDAY, BYYEARDAY and
    BYDAY's weekdays), the test dateutil applies to every day it walks.

    A superset: ordinals, BYSETPOS, BYWEEKNO, INTERVAL and the defaults dateutil takes from DTSTART are
    left to dateutil. It rules out what cannot happen at all (February 30, the 31st of April, the 366th
    day of a common year) before dateutil would walk up to the year 9999 looking for it. Looking at one
    400-year cycle is enough: every later day repeats one of it."""
    months = {int(v) for v in recur.get("BYMONTH", [])}
    monthdays = {int(v) for v in recur.get("BYMONTHDAY", [])}
    yeardays = {int(v) for v in recur.get("BYYEARDAY", [])}
    weekdays: set[int] = set()
    for value in recur.get("BYDAY", []):
        match = _BYDAY.match(str(value).upper())
        if match is None:
            return True  # dateutil will judge the value; no reason to rule anything out here
        weekdays.add(_WEEKDAYS.index(match.group(1)))
    if not (months or monthdays or yeardays or weekdays):
        return True
    day, last = days
    one = timedelta(days=1)
    while day <= last:
        if _passes(day, months, monthdays, yeardays, weekdays):
            return True
        if day == date.max:
            break
        day += one
    return False


def _passes(day: date, months: set[int], monthdays: set[int], yeardays: set[int], weekdays: set[int]) -> bool:
    if months and day.month not in months:
        return False
    if weekdays and day.weekday() not in weekdays:
        return False
    if monthdays:
        length = _month_length(day)
        if day.day not in monthdays and day.day - length - 1 not in monthdays:
            return False
    if yeardays:
        number = day.timetuple().tm_yday
        length = 366 if _leap(day.year) else 365
        if number not in yeardays and number - length - 1 not in yeardays:
            return False
    return True


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _month_length(day: date) -> int:
    if day.month == 2:
        return 29 if _leap(day.year) else 28
    return 30 if day.month in (4, 6, 9, 11) else 31
