"""One occurrence of a timed series made all-day (RFC 5545 lets an override's DTSTART be a DATE whatever
the series' is; Thunderbird writes it): the CRM keeps it as an override whose start and end are dates,
and writes it back as ``DTSTART;VALUE=DATE`` with its RECURRENCE-ID still a time in the series' zone.
The reverse, one occurrence of an all-day series given its own times, is kept as date-times in its own
zone (``DTSTART;TZID=...``) with its RECURRENCE-ID still a date. Exchange (EWS and Graph) gets either
item refused with the reason, never the other kind of occurrence in its place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar

from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import to_ews
from syncd.mapping.fingerprint import fingerprint
from syncd.mapping.graph import event_to_graph
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.occurrences import has_occurrence, occurrences
from syncd.model import Activity, CrmUser

CTX = MappingContext(owner=CrmUser("owner@example.com", "Owner", "Europe/Amsterdam"))
MARCH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def series(override: str, rid: str = "RECURRENCE-ID;TZID=Europe/Amsterdam:20260309T090000") -> bytes:
    title = "" if "SUMMARY" in override else "SUMMARY:Daily\n"
    text = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n"
        "BEGIN:VEVENT\nUID:daily\nDTSTAMP:20260101T000000Z\nSUMMARY:Daily\n"
        "DTSTART;TZID=Europe/Amsterdam:20260307T090000\nDTEND;TZID=Europe/Amsterdam:20260307T100000\n"
        "RRULE:FREQ=DAILY;COUNT=4\nEND:VEVENT\n"
        "BEGIN:VEVENT\nUID:daily\nDTSTAMP:20260101T000000Z\n"
        f"{title}{rid}\n{override}\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n").encode()


def shown(data: bytes) -> list[tuple[Any, Any, str]]:
    """(start, end, title) of each occurrence in March, as a CalDAV client shows them."""
    found = recurring_ical_events.of(Calendar.from_ical(data)).between(*MARCH)
    return sorted(
        ((e["DTSTART"].dt, e["DTEND"].dt, str(e["SUMMARY"])) for e in found), key=lambda o: str(o[0])
    )


def read(data: bytes) -> Activity:
    return from_ical(data, CTX, "daily").activity


def calendars_show_the_same(source: bytes, written: bytes, activity: Activity, kept: tuple[Any, Any]) -> None:
    """The very occurrences a calendar shows for the source, for the written item and in syncd's expansion,
    the (start, end) of the occurrence ``kept`` among them."""
    assert shown(written) == shown(source)
    assert kept in [(s, e) for s, e, _ in shown(source)]
    assert [(s, e) for s, e, _ in shown(source)] == occurrences(activity, *MARCH)


ONE_DAY = "DTSTART;VALUE=DATE:20260309\nDTEND;VALUE=DATE:20260310"


@pytest.mark.parametrize(
    ("override", "days"),
    [
        (ONE_DAY, (date(2026, 3, 9), date(2026, 3, 10))),
        ("DTSTART;VALUE=DATE:20260309", (date(2026, 3, 9), date(2026, 3, 10))),  # a DATE alone is one day
        (
            "DTSTART;VALUE=DATE:20260309\nDTEND;VALUE=DATE:20260311\nSUMMARY:Offsite",
            (date(2026, 3, 9), date(2026, 3, 11)),
        ),
    ],
    ids=["one-day", "no-dtend", "two-days-retitled"],
)
def test_an_occurrence_made_all_day_goes_through_the_crm_and_back(override: str, days: tuple[date, date]) -> None:
    source = series(override)
    activity = read(source)
    assert activity.recurrence is not None
    [kept] = activity.recurrence.overrides
    assert (kept.start, kept.end) == days
    assert kept.recurrence_id == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)

    written = to_ical(activity, CTX)
    [component] = [c for c in Calendar.from_ical(written).walk("VEVENT") if "RECURRENCE-ID" in c]
    assert b"DTSTART;VALUE=DATE:20260309" in component.to_ical()
    assert component["DTEND"].dt == days[1]
    assert component["RECURRENCE-ID"].params["TZID"] == "Europe/Amsterdam"
    assert component["RECURRENCE-ID"].dt == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert read(written) == activity

    calendars_show_the_same(source, written, activity, days)


def test_the_all_day_occurrence_counts_for_the_sync_window_on_its_own_day() -> None:
    activity = read(series(ONE_DAY))
    # The series' 09:00 slot that day is replaced by the day, which fills it (a day compared with a
    # window in UTC is that UTC day, as recurring-ical-events compares it).
    day = (datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 9, 22, tzinfo=UTC))
    assert occurrences(activity, *day) == [(date(2026, 3, 9), date(2026, 3, 10))]
    assert has_occurrence(activity, datetime(2026, 3, 9, 14, tzinfo=UTC), datetime(2026, 3, 9, 15, tzinfo=UTC))
    assert not has_occurrence(activity, datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 10, 7, tzinfo=UTC))


def test_all_day_and_timed_on_the_same_day_are_different_content() -> None:
    all_day = read(series(ONE_DAY))
    timed = read(series("DTSTART;TZID=Europe/Amsterdam:20260309T000000\nDTEND;TZID=Europe/Amsterdam:20260310T000000"))
    no_end = read(series("DTSTART;VALUE=DATE:20260309"))
    assert fingerprint(all_day) != fingerprint(timed)
    assert fingerprint(all_day) == fingerprint(no_end)  # DTEND the next day or none: one day either way
    assert fingerprint(all_day) != fingerprint(read(series("DTSTART;VALUE=DATE:20260309\nDTEND;VALUE=DATE:20260311")))


def test_an_occurrence_moved_to_another_time_is_read() -> None:
    activity = read(
        series("DTSTART;TZID=Europe/Amsterdam:20260309T140000\nDTEND;TZID=Europe/Amsterdam:20260309T150000")
    )
    assert activity.recurrence is not None
    [override] = activity.recurrence.overrides
    assert isinstance(override.start, datetime) and (override.start.hour, override.start.minute) == (14, 0)


# -- the reverse: one occurrence of an all-day series given its own times --------------------------------
# RFC 5545 lets an override's DTSTART be a DATE-TIME in a series of DATEs. The CRM keeps it as an override
# whose start and end are date-times (none: an instant, as a DTSTART alone means) while its recurrence_id
# stays a date; it is written back in its own zone, never read as the plain day it replaces.


def day_series(override: str, rid: str = "RECURRENCE-ID;VALUE=DATE:20260309", extra: str = "") -> bytes:
    title = "" if "SUMMARY" in override else "SUMMARY:Rota\n"
    text = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n"
        f"{extra}"
        "BEGIN:VEVENT\nUID:rota\nDTSTAMP:20260101T000000Z\nSUMMARY:Rota\n"
        "DTSTART;VALUE=DATE:20260307\nDTEND;VALUE=DATE:20260308\n"
        "RRULE:FREQ=DAILY;COUNT=4\nEND:VEVENT\n"
        "BEGIN:VEVENT\nUID:rota\nDTSTAMP:20260101T000000Z\n"
        f"{title}{rid}\n{override}\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n").encode()


BERLIN = ZoneInfo("Europe/Berlin")
AFTERNOON = "DTSTART;TZID=Europe/Berlin:20260309T140000\nDTEND;TZID=Europe/Berlin:20260309T150000"
# A zone no IANA zone matches (its own rules): the writer cannot name it, so the times go out in UTC.
ODD_ZONE = (
    "BEGIN:VTIMEZONE\nTZID:Odd Time\nBEGIN:STANDARD\nDTSTART:19700101T000000\nTZOFFSETFROM:+0317\n"
    "TZOFFSETTO:+0317\nEND:STANDARD\nEND:VTIMEZONE\n"
)


@pytest.mark.parametrize(
    ("override", "extra", "times", "lines"),
    [
        (
            AFTERNOON, "",
            (datetime(2026, 3, 9, 14, tzinfo=BERLIN), datetime(2026, 3, 9, 15, tzinfo=BERLIN)),
            ["DTSTART;TZID=Europe/Berlin:20260309T140000", "DTEND;TZID=Europe/Berlin:20260309T150000"],
        ),
        (
            # A DATE-TIME alone is an instant (RFC 5545 3.6.1), not the series' day.
            "DTSTART;TZID=Europe/Berlin:20260309T140000", "",
            (datetime(2026, 3, 9, 14, tzinfo=BERLIN), datetime(2026, 3, 9, 14, tzinfo=BERLIN)),
            ["DTSTART;TZID=Europe/Berlin:20260309T140000"],
        ),
        (
            # Moved to the next afternoon and retitled, in UTC; its end given as a duration.
            "DTSTART:20260311T230000Z\nDURATION:PT3H\nSUMMARY:Night shift", "",
            (datetime(2026, 3, 11, 23, tzinfo=UTC), datetime(2026, 3, 12, 2, tzinfo=UTC)),
            ["DTSTART:20260311T230000Z", "DTEND:20260312T020000Z"],
        ),
        (
            "DTSTART;TZID=Odd Time:20260309T140000\nDTEND;TZID=Odd Time:20260309T150000", ODD_ZONE,
            (datetime(2026, 3, 9, 10, 43, tzinfo=UTC), datetime(2026, 3, 9, 11, 43, tzinfo=UTC)),
            ["DTSTART:20260309T104300Z", "DTEND:20260309T114300Z"],
        ),
    ],
    ids=["own-zone", "no-dtend", "moved-utc-retitled", "zone-no-tzid-can-name"],
)
def test_an_all_day_series_occurrence_given_times_goes_through_the_crm_and_back(
    override: str, extra: str, times: tuple[datetime, datetime], lines: list[str]
) -> None:
    source = day_series(override, extra=extra)
    activity = read_days(source)
    assert activity.all_day and activity.recurrence is not None
    [kept] = activity.recurrence.overrides
    assert kept.recurrence_id == date(2026, 3, 9)
    assert (kept.start, kept.end) == times  # the very instants
    if override.startswith("DTSTART;TZID=Europe/Berlin"):
        assert isinstance(kept.start, datetime) and kept.start.tzinfo == BERLIN  # and its zone

    written = to_ical(activity, CTX)
    [component] = [c for c in Calendar.from_ical(written).walk("VEVENT") if "RECURRENCE-ID" in c]
    text = component.to_ical().decode()
    assert "RECURRENCE-ID;VALUE=DATE:20260309" in text
    assert [line for line in text.splitlines() if line.startswith(("DTSTART", "DTEND"))] == lines
    zones = {str(tz["TZID"]) for tz in Calendar.from_ical(written).walk("VTIMEZONE")}
    assert zones == ({"Europe/Berlin"} if "Europe/Berlin" in lines[0] else set())
    assert read_days(written) == activity

    calendars_show_the_same(source, written, activity, times)


def read_days(data: bytes) -> Activity:
    return from_ical(data, CTX, "rota").activity


def test_the_timed_occurrence_counts_for_the_sync_window_at_its_own_times() -> None:
    activity = read_days(day_series(AFTERNOON))
    assert has_occurrence(activity, datetime(2026, 3, 9, 13, 30, tzinfo=UTC), datetime(2026, 3, 9, 14, tzinfo=UTC))
    # The rest of the day it replaces is no longer taken by the series.
    assert not has_occurrence(activity, datetime(2026, 3, 9, 6, tzinfo=UTC), datetime(2026, 3, 9, 12, tzinfo=UTC))
    assert occurrences(activity, datetime(2026, 3, 9, 6, tzinfo=UTC), datetime(2026, 3, 9, 20, tzinfo=UTC)) == [
        (datetime(2026, 3, 9, 13, tzinfo=UTC), datetime(2026, 3, 9, 14, tzinfo=UTC))
    ]
    # Moved out of the series' days, it is found where it went (an instant: starting in the window).
    moved = read_days(day_series("DTSTART;TZID=Europe/Berlin:20260320T090000"))
    assert has_occurrence(moved, datetime(2026, 3, 20, 7, 30, tzinfo=UTC), datetime(2026, 3, 20, 8, 30, tzinfo=UTC))
    assert not has_occurrence(moved, datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))


def test_a_timed_occurrence_is_other_content_than_its_day_and_than_a_day_long_one() -> None:
    plain = read_days(day_series("DTSTART;VALUE=DATE:20260309\nSUMMARY:Rota"))
    afternoon = read_days(day_series(AFTERNOON))
    instant = read_days(day_series("DTSTART;TZID=Europe/Berlin:20260309T140000"))
    # Twenty-four hours is the series' length in days, yet no end means an instant, not that length.
    whole = read_days(
        day_series("DTSTART;TZID=Europe/Berlin:20260309T140000\nDTEND;TZID=Europe/Berlin:20260310T140000")
    )
    utc = read_days(day_series("DTSTART:20260309T130000Z\nDTEND:20260309T140000Z"))
    prints = [fingerprint(a) for a in (plain, afternoon, instant, whole)]
    assert len(set(prints)) == 4
    assert fingerprint(utc) == fingerprint(afternoon)  # the same instants in another zone: no change


# -- either kind: what Exchange cannot hold, and what RFC 5545 leaves open -----------------------------------


@pytest.mark.parametrize(
    ("reader", "source", "reason", "carried"),
    [
        (
            read, series(ONE_DAY), r"occurrence of a timed series made all-day cannot be written to Exchange",
            series("DTSTART;TZID=Europe/Amsterdam:20260309T140000\nDTEND;TZID=Europe/Amsterdam:20260309T150000"),
        ),
        (
            read_days, day_series(AFTERNOON),
            r"occurrence of an all-day series given its own times cannot be written to Exchange",
            day_series("DTSTART;VALUE=DATE:20260309\nSUMMARY:Holiday"),
        ),
    ],
    ids=["all-day-occurrence-of-timed-series", "timed-occurrence-of-all-day-series"],
)
def test_exchange_and_graph_refuse_it_with_the_reason_while_calendars_take_it(
    reader: Callable[[bytes], Activity], source: bytes, reason: str, carried: bytes
) -> None:
    activity = reader(source)
    with pytest.raises(ItemError, match=reason):
        to_ews(activity, CTX)
    with pytest.raises(ItemError, match=reason):
        event_to_graph(activity, CTX, invitations=True)
    to_ical(activity, CTX)  # the refusal is Exchange's only
    # An occurrence of the series' own kind, moved or retitled, is carried.
    same_kind = reader(carried)
    to_ews(same_kind, CTX)
    event_to_graph(same_kind, CTX, invitations=True)


@pytest.mark.parametrize(
    ("reader", "source", "reason"),
    [
        (
            read, series(ONE_DAY, rid="RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Amsterdam:20260309T090000"),
            r"every later occurrence of a timed series all-day.*RFC 5545 leaves open",
        ),
        (
            read_days, day_series(AFTERNOON, rid="RECURRENCE-ID;RANGE=THISANDFUTURE;VALUE=DATE:20260309"),
            r"every later occurrence of an all-day series its own times.*RFC 5545",
        ),
    ],
    ids=["made-all-day", "day-given-times"],
)
def test_this_and_every_later_occurrence_of_the_other_kind_is_refused_with_the_reason(
    reader: Callable[[bytes], Activity], source: bytes, reason: str
) -> None:
    with pytest.raises(ItemError, match=reason):
        reader(source)
