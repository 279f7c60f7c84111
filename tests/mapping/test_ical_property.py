"""Generated activities survive activity -> iCalendar -> activity, and the written series expands
(recurring-ical-events, on the re-parsed text) to exactly the occurrences the activity defines."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import recurring_ical_events
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from syncd.mapping.context import MappingContext
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.ical_recurrence import normalize_rrule
from syncd.mapping.occurrences import occurrences
from syncd.model import (
    Activity,
    CrmUser,
    Direction,
    Kind,
    Moment,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
    Regarding,
    RegardingKind,
    Response,
    Role,
)
from syncd.store.rules import participant_problems

CTX = MappingContext(owner=CrmUser("owner@example.com", "Owner", "Europe/Amsterdam"))
ZONES = [None, "Europe/Amsterdam", "America/New_York", "Asia/Jerusalem", "Europe/Warsaw", "Australia/Sydney"]
WORDS = ["Overleg", "spotkanie", "Zażółć gęślą jaźń", "פגישה עם לקוח", "afspraak; klant", "a,b", "back\\slash", "line\nbreak", "Ĳsselmeer"]
DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
STATUSES = [None, "open", "planned", "postponed", "done", "succeeded", "cancelled", "custom status"]
EMAILS = ["jan@klant.nl", "Anna@Firma.PL", "dawid@example.co.il", "info@acme.com"]

texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)


@st.composite
def rules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 3))}")
    if freq == "WEEKLY" and draw(st.booleans()):
        parts.append("BYDAY=" + ",".join(draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=3, unique=True))))
    if freq == "MONTHLY":
        style = draw(st.sampled_from(["plain", "ordinal", "monthday", "setpos"]))
        if style == "ordinal":
            parts.append(f"BYDAY={draw(st.sampled_from(['1', '2', '-1']))}{draw(st.sampled_from(DAYS))}")
        elif style == "monthday":
            parts.append(f"BYMONTHDAY={draw(st.sampled_from(['1', '15', '28', '-1']))}")
        elif style == "setpos":
            parts.append("BYDAY=MO,TU,WE,TH,FR")
            parts.append(f"BYSETPOS={draw(st.sampled_from(['1', '-1']))}")
    if freq == "YEARLY" and draw(st.booleans()):
        parts.append(f"BYMONTH={draw(st.integers(1, 12))}")
        if draw(st.booleans()):
            parts.append(f"BYDAY={draw(st.sampled_from(['1', '-1']))}{draw(st.sampled_from(DAYS))}")
    return ";".join(parts)


@st.composite
def activities(draw: st.DrawFn) -> Activity:
    kind = draw(st.sampled_from([Kind.APPOINTMENT, Kind.CALL, Kind.TASK]))
    all_day = draw(st.booleans())
    zone = None if all_day else draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone) if zone else UTC
    seed = date(2025, 1, 1) + timedelta(days=draw(st.integers(0, 730)))
    recurring = draw(st.booleans())
    rule = draw(rules()) if recurring else None
    wall = datetime.combine(seed, time(draw(st.integers(6, 21)), draw(st.sampled_from([0, 15, 30, 45]))))
    if rule:  # DTSTART is the rule's first instance, as RFC 5545 expects of a producer
        first = next(iter(rrulestr(rule, dtstart=wall)), None)
        assume(first is not None)  # an UNTIL before the seed gives no instance at all
        wall = first
    start: Moment = wall.date() if all_day else wall.replace(tzinfo=tz)
    if all_day:
        end: Moment = start + timedelta(days=draw(st.integers(0, 3)))
    else:
        end = start + timedelta(minutes=draw(st.integers(0, 40)) * 15)
    recurrence = None
    if rule:
        if draw(st.booleans()):
            rule += f";COUNT={draw(st.integers(1, 12))}"
        else:
            until = start + timedelta(days=draw(st.integers(0, 400)))
            rule += ";UNTIL=" + (until.strftime("%Y%m%d") if all_day else until.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
        series = _expected(start, end, all_day, Recurrence(normalize_rrule(rule)))
        length = (end - start) or (timedelta(days=1) if all_day else timedelta())
        picked = draw(st.lists(st.sampled_from(series), unique=True, max_size=4)) if series else []
        n_ex = draw(st.integers(0, len(picked)))
        exdates = tuple(s for s, _ in picked[:n_ex])
        overrides = []
        for rid, _ in sorted(picked[n_ex:], key=lambda p: _key(p[0])):
            shift = timedelta(days=draw(st.integers(0, 2))) if all_day else timedelta(minutes=15 * draw(st.integers(-8, 8)))
            moved = rid + shift
            overrides.append(Override(
                recurrence_id=rid,
                start=None if moved == rid else moved,
                # an override's own end differs from the series' length, else it reads back as inherited
                end=moved + length + (timedelta(days=1) if all_day else timedelta(minutes=5))
                if draw(st.booleans()) and kind is not Kind.TASK else None,
                subject=draw(st.one_of(st.none(), texts.map(lambda t: t + " (moved)")))
            ))
        recurrence = Recurrence(normalize_rrule(rule), exdates, tuple(overrides))
    n_people = draw(st.integers(0, 4))
    participants = tuple(
        p
        for p in (
            Participant(
                kind=draw(st.sampled_from(list(ParticipantKind))),
                email=EMAILS[i] if draw(st.booleans()) else None,
                name=draw(st.one_of(st.none(), texts)),
                role=draw(st.sampled_from(list(Role))),
                response=draw(st.sampled_from(list(Response))),
            )
            for i in range(n_people)
        )
        if not participant_problems(p, "")  # what the store keeps (a user needs an e-mail, anyone a name or one)
    )
    is_task = kind is Kind.TASK
    return Activity(
        id=draw(st.sampled_from(["1", "act-9", "ü/ß,1"])),
        kind=kind,
        subject=draw(texts),
        owner="owner@example.com",
        description=draw(st.one_of(st.none(), texts)),
        start=start,
        end=None if is_task else end,
        due=end if is_task and end != start else None,
        all_day=all_day,
        timezone=zone,
        status=draw(st.sampled_from(STATUSES)),
        type=draw(st.sampled_from([None, "sales meeting", "kick-off", "rozmowa"])),
        priority=draw(st.sampled_from([None, "high", "normal", "low", "urgent"])),
        direction=draw(st.sampled_from([None, Direction.INBOUND, Direction.OUTBOUND])),
        location=draw(st.one_of(st.none(), texts)),
        place=draw(st.one_of(st.none(), texts)),
        project=draw(st.one_of(st.none(), texts)),
        reminder_minutes=draw(st.sampled_from([None, 0, 5, 15, 60, 1440])),
        recurrence=recurrence,
        participants=participants,
        regarding=tuple(Regarding(RegardingKind.ACCOUNT, f"a{i}", draw(texts)) for i in range(draw(st.integers(0, 2)))),
        parent_id=draw(st.sampled_from([None, "p-1"])),
        close_reason=draw(st.one_of(st.none(), texts)),
    )


def _key(moment: Moment) -> datetime:
    return moment if isinstance(moment, datetime) else datetime.combine(moment, time(), tzinfo=UTC)


def _expected(start: Moment, end: Moment, all_day: bool, rec: Recurrence) -> list[tuple[Moment, Moment]]:
    """The series computed independently with dateutil, on the wall clock as RFC 5545 asks."""
    length = (end - start) or (timedelta(days=1) if all_day else timedelta())
    dtstart = datetime.combine(start, time()) if all_day else start
    result = []
    overrides = {o.recurrence_id: o for o in rec.overrides}
    for occurrence in rrulestr(rec.rrule, dtstart=dtstart):
        moment = occurrence.date() if all_day else occurrence
        if moment in rec.exdates:
            continue
        override = overrides.get(moment)
        begin = override.start if override and override.start is not None else moment
        finish = override.end if override and override.end is not None else begin + length
        result.append((begin, finish))
    return result


def _window(activity: Activity) -> tuple[datetime, datetime]:
    assert isinstance(activity.start, date)
    first = _key(activity.start) - timedelta(days=3)
    return first, first + timedelta(days=40 * 366)  # holds every finite series generated here


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(activities())
def test_round_trip_and_expansion(activity: Activity) -> None:
    """to_ical then from_ical gives the same activity; the text expands to the activity's occurrences."""
    data = to_ical(activity, CTX)
    back = from_ical(data, CTX, "gen.ics").activity
    assert back == activity
    if activity.recurrence is None or activity.kind is Kind.TASK:
        return
    first, last = _window(activity)
    expected = sorted(_expected(activity.start, activity.end, activity.all_day, activity.recurrence), key=lambda p: _key(p[0]))
    # recurring-ical-events on the re-parsed text, as any CalDAV client would see it
    found = recurring_ical_events.of(Calendar.from_ical(data)).between(first, last)
    assert sorted((e.start, e.end) for e in found) == sorted(expected, key=lambda p: (_key(p[0]), _key(p[1])))
    assert occurrences(back, first, last) == expected
