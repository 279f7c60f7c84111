"""RRULE <-> EWS recurrence: every converted rule has exactly the occurrences of the EWS pattern.

The EWS side is expanded by an oracle written from Microsoft's pattern definitions (below), the RRULE
side by dateutil, so a conversion that silently changes a schedule fails here.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from exchangelib.fields import MONTHS, WEEK_NUMBERS, WEEKDAY_NAMES, WEEKDAYS
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NumberedPattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from syncd.mapping.ews_recurrence import (
    UnsupportedRecurrence,
    from_ews_recurrence,
    occurrence_changes,
    to_ews_recurrence,
)
from syncd.model import Activity, Kind, Override
from syncd.model import Recurrence as DomainRecurrence

AMS = ZoneInfo("Europe/Amsterdam")
NY = ZoneInfo("America/New_York")
HORIZON = 60  # occurrences compared per rule


# --- oracle: EWS pattern semantics, from the EWS reference ------------------------------------------


def _idx(value, names) -> int:
    return value - 1 if isinstance(value, int) else list(names).index(value)


def _day_matches(weekday_value, d: date) -> bool:
    i = _idx(weekday_value, WEEKDAYS)
    if i < 7:
        return d.weekday() == i
    return {"Day": True, "Weekday": d.weekday() < 5, "WeekendDay": d.weekday() >= 5}[WEEKDAYS[i]]


def _relative_day(year: int, month: int, weekday_value, week_value) -> date:
    days = [date(year, month, n) for n in range(1, calendar.monthrange(year, month)[1] + 1)]
    matching = [d for d in days if _day_matches(weekday_value, d)]
    index = _idx(week_value, WEEK_NUMBERS)
    return matching[-1] if index == 4 else matching[index]


def _clamped(year: int, month: int, day: int) -> date:
    """EWS: "if a month has fewer days than DayOfMonth, the last day of the month is used"."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def ews_dates(rec: Recurrence, limit: int):
    pattern, boundary = rec.pattern, rec.boundary
    start = boundary.start if type(boundary.start) is not datetime else boundary.start.date()
    start = date(start.year, start.month, start.day)
    end = getattr(boundary, "end", None)
    end = date(end.year, end.month, end.day) if end is not None else None
    number = getattr(boundary, "number", None)
    count = 0
    d = start
    while count < limit and (number is None or count < number) and d.year < start.year + 250:
        if end is not None and d > end:
            return
        months = (d.year - start.year) * 12 + d.month - start.month
        if isinstance(pattern, DailyPattern):
            ok = (d - start).days % pattern.interval == 0
        elif isinstance(pattern, WeeklyPattern):
            fdow = _idx(pattern.first_day_of_week, WEEKDAY_NAMES)
            week0 = start - timedelta(days=(start.weekday() - fdow) % 7)
            ok = d.isoweekday() in [_idx(w, WEEKDAY_NAMES) + 1 for w in pattern.weekdays] and (
                (d - week0).days // 7
            ) % pattern.interval == 0
        elif isinstance(pattern, AbsoluteMonthlyPattern):
            ok = months % pattern.interval == 0 and d == _clamped(d.year, d.month, pattern.day_of_month)
        elif isinstance(pattern, RelativeMonthlyPattern):
            ok = months % pattern.interval == 0 and d == _relative_day(d.year, d.month, pattern.weekday, pattern.week_number)
        elif isinstance(pattern, AbsoluteYearlyPattern):
            month = _idx(pattern.month, MONTHS) + 1
            ok = d.month == month and d == _clamped(d.year, month, pattern.day_of_month)
        else:
            assert isinstance(pattern, RelativeYearlyPattern)
            month = _idx(pattern.month, MONTHS) + 1
            ok = d.month == month and d == _relative_day(d.year, month, pattern.weekday, pattern.week_number)
        if ok:
            count += 1
            yield d
        d += timedelta(days=1)


def ews_occurrences(rec: Recurrence, dtstart, zone: ZoneInfo, limit: int = HORIZON) -> list:
    if isinstance(dtstart, datetime):
        wall = dtstart.astimezone(zone).time()
        return [datetime.combine(d, wall, tzinfo=zone) for d in ews_dates(rec, limit)]
    return list(ews_dates(rec, limit))


def rrule_occurrences(rule: str, dtstart, zone: ZoneInfo, limit: int = HORIZON) -> list:
    if isinstance(dtstart, datetime):
        return list(islice(rrulestr(rule, dtstart=dtstart.astimezone(zone)), limit))
    return [o.date() for o in islice(rrulestr(rule, dtstart=datetime.combine(dtstart, time())), limit)]


# --- supported rules ---------------------------------------------------------------------------------

SUPPORTED = [
    # (rule, dtstart) -- timed ones in Amsterdam cross the March/October DST changes
    ("FREQ=DAILY", datetime(2030, 3, 28, 9, 30, tzinfo=AMS)),
    ("FREQ=DAILY;INTERVAL=3;COUNT=20", datetime(2030, 3, 20, 23, 30, tzinfo=AMS)),
    ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", datetime(2030, 3, 25, 8, tzinfo=AMS)),
    ("FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20300501T070000Z", datetime(2030, 3, 4, 9, tzinfo=AMS)),
    ("FREQ=WEEKLY;UNTIL=20300325T075959Z", datetime(2030, 3, 4, 9, tzinfo=AMS)),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=SU", datetime(2030, 10, 1, 14, tzinfo=AMS)),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=MO", datetime(2030, 10, 1, 14, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYMONTHDAY=15;COUNT=14", datetime(2030, 1, 15, 10, tzinfo=NY)),
    ("FREQ=MONTHLY", datetime(2030, 1, 28, 10, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", datetime(2030, 1, 31, 10, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1", datetime(2030, 1, 30, 10, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYMONTHDAY=28,29;BYSETPOS=-1;INTERVAL=5", datetime(2030, 1, 29, 10, tzinfo=AMS)),
    ("FREQ=MONTHLY;INTERVAL=2;BYDAY=2TU", datetime(2030, 1, 8, 10, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=-1FR", datetime(2030, 1, 25, 16, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=TH;BYSETPOS=3", datetime(2030, 1, 17, 16, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", datetime(2030, 1, 31, 16, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=SA,SU;BYSETPOS=1", datetime(2030, 1, 5, 16, tzinfo=AMS)),
    # every Monday (Tuesday and Thursday) of every month: a weekly pattern
    ("FREQ=MONTHLY;BYDAY=MO", datetime(2030, 1, 7, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=TU,TH;COUNT=30", datetime(2030, 3, 5, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYSETPOS=2", datetime(2030, 1, 2, 16, tzinfo=AMS)),
    ("FREQ=YEARLY", datetime(2030, 3, 31, 2, 30, tzinfo=AMS)),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1", datetime(2030, 2, 28, 12, tzinfo=AMS)),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1;COUNT=9", datetime(2030, 2, 28, 12, tzinfo=AMS)),
    ("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH", datetime(2030, 11, 28, 12, tzinfo=NY)),
    ("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;UNTIL=20400101T000000Z", datetime(2030, 3, 31, 3, tzinfo=AMS)),
    ("FREQ=YEARLY;INTERVAL=2;BYMONTH=6;BYMONTHDAY=10", datetime(2030, 6, 10, 9, tzinfo=AMS)),
    ("FREQ=YEARLY;INTERVAL=4;BYMONTH=6;BYDAY=1MO", datetime(2030, 6, 3, 9, tzinfo=AMS)),
    # all-day
    ("FREQ=WEEKLY;BYDAY=FR;UNTIL=20300628", date(2030, 1, 4)),
    ("FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25", date(2030, 12, 25)),
    ("FREQ=MONTHLY;BYDAY=1MO;COUNT=12", date(2030, 4, 1)),
    # UTC, no DST
    ("FREQ=DAILY;INTERVAL=2;COUNT=30", datetime(2030, 3, 29, 23, tzinfo=timezone.utc)),
]


@pytest.mark.parametrize(("rule", "dtstart"), SUPPORTED, ids=[r for r, _ in SUPPORTED])
def test_ews_pattern_has_the_rules_occurrences(rule, dtstart):
    """The EWS pattern written for a rule yields the very occurrences the rule does."""
    zone = dtstart.tzinfo if isinstance(dtstart, datetime) else AMS
    rec = to_ews_recurrence(rule, dtstart, zone)
    assert rrule_occurrences(rule, dtstart, zone) == ews_occurrences(rec, dtstart, zone)


@pytest.mark.parametrize(("rule", "dtstart"), SUPPORTED, ids=[r for r, _ in SUPPORTED])
def test_rule_read_from_ews_has_the_patterns_occurrences(rule, dtstart):
    """Inbound, the RRULE made from an EWS pattern yields the pattern's occurrences."""
    zone = dtstart.tzinfo if isinstance(dtstart, datetime) else AMS
    rec = to_ews_recurrence(rule, dtstart, zone)
    back = from_ews_recurrence(rec, dtstart, zone)
    assert ews_occurrences(rec, dtstart, zone) == rrule_occurrences(back, dtstart, zone)


def test_until_between_occurrences_ends_the_series_before_it():
    """UNTIL earlier in the day than the series' time excludes that day's occurrence (EWS EndDate is a date)."""
    dtstart = datetime(2030, 3, 4, 9, tzinfo=AMS)
    rec = to_ews_recurrence("FREQ=DAILY;UNTIL=20300310T070000Z", dtstart, AMS)  # 08:00 local
    assert isinstance(rec.boundary, EndDatePattern)
    assert rec.boundary.end == date(2030, 3, 9)


def test_count_becomes_numbered_boundary():
    rec = to_ews_recurrence("FREQ=WEEKLY;COUNT=7", datetime(2030, 1, 7, 9, tzinfo=AMS), AMS)
    assert isinstance(rec.boundary, NumberedPattern) and rec.boundary.number == 7


UNSUPPORTED = [
    ("FREQ=MONTHLY;BYDAY=1MO,3MO", datetime(2030, 1, 7, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=2MO,-1MO", datetime(2030, 1, 14, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;INTERVAL=2;BYDAY=MO", datetime(2030, 1, 7, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=5FR", datetime(2030, 3, 29, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=-2FR", datetime(2030, 1, 18, 9, tzinfo=AMS)),
    ("FREQ=HOURLY;INTERVAL=4", datetime(2030, 1, 7, 9, tzinfo=AMS)),
    ("FREQ=MINUTELY;INTERVAL=30", datetime(2030, 1, 7, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYMONTHDAY=1,15", datetime(2030, 1, 1, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYMONTHDAY=31", datetime(2030, 1, 31, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY", datetime(2030, 1, 30, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=MO,WE;BYSETPOS=1", datetime(2030, 1, 2, 9, tzinfo=AMS)),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,-1", datetime(2030, 1, 1, 9, tzinfo=AMS)),
    ("FREQ=YEARLY;BYMONTH=1,7", datetime(2030, 1, 7, 9, tzinfo=AMS)),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", datetime(2032, 2, 29, 9, tzinfo=AMS)),
    ("FREQ=YEARLY;BYDAY=20MO", datetime(2030, 5, 13, 9, tzinfo=AMS)),
    ("FREQ=WEEKLY;BYHOUR=9,15", datetime(2030, 1, 7, 9, tzinfo=AMS)),
    ("FREQ=DAILY;COUNT=1000", datetime(2030, 1, 7, 9, tzinfo=AMS)),
    ("FREQ=WEEKLY;INTERVAL=100", datetime(2030, 1, 7, 9, tzinfo=AMS)),
    ("FREQ=WEEKLY;BYDAY=TU", datetime(2030, 1, 7, 9, tzinfo=AMS)),  # DTSTART (a Monday) not an occurrence
    ("FREQ=FORTNIGHTLY", datetime(2030, 1, 7, 9, tzinfo=AMS)),
]


@pytest.mark.parametrize(("rule", "dtstart"), UNSUPPORTED, ids=[r for r, _ in UNSUPPORTED])
def test_inexpressible_rule_raises_and_warns(rule, dtstart):
    """A rule EWS cannot express exactly is refused with a reason and a warning, never approximated."""
    with capture_logs() as logs, pytest.raises(UnsupportedRecurrence) as err:
        to_ews_recurrence(rule, dtstart, AMS, item="act-1")
    assert err.value.item == "act-1" and err.value.reason
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["ews.recurrence.unsupported"]


# --- property: random rules of the supported shapes --------------------------------------------------

_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@st.composite
def supported_rules(draw):
    zone = draw(st.sampled_from([AMS, NY, ZoneInfo("Australia/Sydney"), ZoneInfo("UTC")]))
    anchor = draw(st.dates(min_value=date(2024, 1, 1), max_value=date(2035, 12, 31)))
    all_day = draw(st.booleans())
    shape = draw(st.sampled_from(["daily", "weekly", "absmonthly", "relmonthly", "setpos", "absyearly", "relyearly"]))
    parts: list[str]
    if shape == "daily":
        parts = ["FREQ=DAILY", f"INTERVAL={draw(st.integers(1, 40))}"]
    elif shape == "weekly":
        days = draw(st.lists(st.sampled_from(_DAYS), min_size=1, max_size=7, unique=True))
        anchor += timedelta(days=(_DAYS.index(days[0]) - anchor.weekday()) % 7)
        parts = ["FREQ=WEEKLY", f"INTERVAL={draw(st.integers(1, 5))}", "BYDAY=" + ",".join(days), "WKST=" + draw(st.sampled_from(_DAYS))]
    elif shape == "absmonthly":
        day = draw(st.sampled_from([1, 5, 17, 28, 29, 30, 31]))
        spelled = {29: "BYMONTHDAY=28,29;BYSETPOS=-1", 30: "BYMONTHDAY=28,29,30;BYSETPOS=-1", 31: "BYMONTHDAY=-1"}
        parts = ["FREQ=MONTHLY", f"INTERVAL={draw(st.integers(1, 13))}", spelled.get(day, f"BYMONTHDAY={day}")]
        anchor = _clamped(anchor.year, anchor.month, day)
    elif shape in ("relmonthly", "setpos", "relyearly"):
        ordinal = draw(st.sampled_from([1, 2, 3, 4, -1]))
        if shape == "setpos":
            days = draw(st.sampled_from([["MO", "TU", "WE", "TH", "FR"], ["SA", "SU"], _DAYS, [draw(st.sampled_from(_DAYS))]]))
            byday, ews_day = "BYDAY=" + ",".join(days) + f";BYSETPOS={ordinal}", {7: "Day", 5: "Weekday", 2: "WeekendDay"}.get(len(days), WEEKDAY_NAMES[_DAYS.index(days[0])])
        else:
            day = draw(st.sampled_from(_DAYS))
            byday, ews_day = f"BYDAY={ordinal}{day}", WEEKDAY_NAMES[_DAYS.index(day)]
        anchor = _relative_day(anchor.year, anchor.month, ews_day, WEEK_NUMBERS[[1, 2, 3, 4, -1].index(ordinal)])
        if shape == "relyearly":
            parts = ["FREQ=YEARLY", f"BYMONTH={anchor.month}", byday]
        else:
            parts = ["FREQ=MONTHLY", f"INTERVAL={draw(st.integers(1, 13))}", byday]
    else:
        parts = ["FREQ=YEARLY", f"BYMONTH={anchor.month}", f"BYMONTHDAY={min(anchor.day, 28)}"]
        anchor = anchor.replace(day=min(anchor.day, 28))
    end = draw(st.sampled_from(["none", "count", "until"]))
    if end == "count":
        parts.append(f"COUNT={draw(st.integers(1, 40))}")
    if all_day:
        dtstart = anchor
        if end == "until":
            parts.append("UNTIL=" + (anchor + timedelta(days=draw(st.integers(0, 900)))).strftime("%Y%m%d"))
    else:
        wall = draw(st.times(min_value=time(0, 0), max_value=time(23, 45)).map(lambda t: t.replace(second=0, microsecond=0)))
        dtstart = datetime.combine(anchor, wall, tzinfo=zone)
        if dtstart.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != dtstart.replace(tzinfo=None):
            dtstart = dtstart.replace(hour=12)  # wall time in a DST gap: not an occurrence EWS could hold either
        if end == "until":
            until = dtstart + timedelta(days=draw(st.integers(0, 900)), minutes=draw(st.integers(-600, 600)))
            parts.append("UNTIL=" + max(until, dtstart).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    return ";".join(parts), dtstart, zone


@settings(max_examples=100, deadline=None)
@given(supported_rules())
def test_any_supported_rule_keeps_its_occurrences(case):
    """Random rules of every supported shape: the EWS pattern and the rule read back from it both
    yield the rule's occurrences."""
    rule, dtstart, zone = case
    rec = to_ews_recurrence(rule, dtstart, zone)
    expected = rrule_occurrences(rule, dtstart, zone)
    assert ews_occurrences(rec, dtstart, zone) == expected
    assert rrule_occurrences(from_ews_recurrence(rec, dtstart, zone), dtstart, zone) == expected


# --- exceptions of a series --------------------------------------------------------------------------


def _series(**rec) -> Activity:
    return Activity(
        id="7",
        kind=Kind.APPOINTMENT,
        subject="Weekly",
        owner="owner@example.com",
        start=datetime(2030, 3, 4, 9, tzinfo=AMS),
        end=datetime(2030, 3, 4, 10, tzinfo=AMS),
        timezone="Europe/Amsterdam",
        recurrence=DomainRecurrence(rrule="FREQ=WEEKLY;COUNT=10", **rec),
    )


def test_occurrence_changes_list_deletions_and_modifications_with_instance_index():
    """EXDATEs and overrides become occurrence operations addressed by their 1-based index."""
    moved = Override(
        recurrence_id=datetime(2030, 4, 1, 9, tzinfo=AMS),
        start=datetime(2030, 4, 2, 9, tzinfo=AMS),
        end=datetime(2030, 4, 2, 10, tzinfo=AMS),
        subject="Moved",
    )
    activity = _series(exdates=(datetime(2030, 3, 18, 8, tzinfo=timezone.utc),), overrides=(moved,))
    changes = occurrence_changes(activity)
    assert [(c.index, c.delete, c.subject) for c in changes] == [(3, True, None), (5, False, "Moved")]
    assert changes[1].start == moved.start


def test_occurrence_changes_skip_what_exchange_already_has_and_non_occurrences():
    exdate = datetime(2030, 3, 18, 9, tzinfo=AMS)
    stray = datetime(2030, 3, 19, 9, tzinfo=AMS)
    activity = _series(exdates=(exdate, stray))
    with capture_logs() as logs:
        changes = occurrence_changes(activity, current=DomainRecurrence("FREQ=WEEKLY;COUNT=10", exdates=(exdate,)))
    assert changes == []
    assert any(e["event"] == "ews.exdate.not_an_occurrence" for e in logs)
