"""Times in the second pass of a repeated hour (a clock set back) keep their instant everywhere.

On 25 October 2026 Amsterdam's clocks go from 03:00 CEST back to 02:00 CET, so 02:30 happens twice:
at 00:30Z and at 01:30Z. An event from 01:30 to the second 02:30 lasts two hours. Python compares
and subtracts two times of one zone on the wall clock (PEP 495), which made syncd refuse an event
from 02:45 (first pass) to 02:15 (second pass) as "ends before it starts" and shorten others by an
hour. Each event here goes iCalendar -> CRM (SQLite and PostgreSQL) -> iCalendar, and through the EWS
mapping, and must come back with the same instants.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ews_schema import assert_valid
from mapping.ews_support import create_payload, reparse
from sqlalchemy.orm import Session

from syncd.mapping.context import MappingContext
from syncd.mapping.ews import from_ews, to_ews
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.occurrences import occurrences
from syncd.model import Activity, CrmUser
from syncd.store import repository
from syncd.store.rules import activity_problems

CTX = MappingContext(owner=CrmUser("anna@example.com", "Anna de Vries", "Europe/Amsterdam"))
NIGHT = (datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))


def event(schedule: str) -> bytes:
    text = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VEVENT\nUID:night-shift\n"
        f"DTSTAMP:20260101T000000Z\nSUMMARY:Night shift\n{schedule}\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n").encode()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def instants(activity: Activity) -> list[tuple[datetime, datetime]]:
    return [(s.astimezone(UTC), e.astimezone(UTC)) for s, e in occurrences(activity, *NIGHT)]  # type: ignore[union-attr]


def through_everything(data: bytes, session: Session, owner: str) -> list[list[tuple[datetime, datetime]]]:
    """The occurrences of the item as read, as the CRM keeps it, as a second calendar and as Exchange
    give it back."""
    read = from_ical(data, CTX, "night").activity.replace(owner=owner)
    assert activity_problems(read) == []
    repository.save_activity(session, read)
    session.commit()
    kept = repository.get_activity(session, read.id)
    assert kept is not None
    again = from_ical(to_ical(kept, CTX), CTX, "second").activity
    item = to_ews(kept, CTX)
    assert_valid(create_payload(item))
    exchange = from_ews(reparse(item), CTX).activity
    return [instants(a) for a in (read, kept, again, exchange)]


EVENTS = [
    # The end in UTC, as syncd writes it: 01:30Z is the second 02:30.
    ("DTSTART;TZID=Europe/Amsterdam:20261025T013000\nDTEND:20261025T013000Z", utc(2026, 10, 24, 23, 30),
     utc(2026, 10, 25, 1, 30)),
    # Two hours from 01:30 (CEST) end at the second 02:30.
    ("DTSTART;TZID=Europe/Amsterdam:20261025T013000\nDURATION:PT2H", utc(2026, 10, 24, 23, 30),
     utc(2026, 10, 25, 1, 30)),
    # From the first 02:45 to the second 02:15: half an hour, earlier on the wall clock.
    ("DTSTART;TZID=Europe/Amsterdam:20261025T024500\nDTEND:20261025T011500Z", utc(2026, 10, 25, 0, 45),
     utc(2026, 10, 25, 1, 15)),
]


def test_an_event_ending_in_the_second_pass_keeps_its_instants(session: Session, owner: str) -> None:
    for schedule, start, end in EVENTS:
        for found in through_everything(event(schedule), session, owner):
            assert found == [(start, end)], schedule


def test_a_series_from_the_fall_back_night_keeps_its_length(session: Session, owner: str) -> None:
    """Two hours from 01:30 to the second 02:30, then two hours every day."""
    series = event("DTSTART;TZID=Europe/Amsterdam:20261025T013000\nDTEND:20261025T013000Z\nRRULE:FREQ=DAILY;COUNT=3")
    expected = [
        (utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 1, 30)),
        (utc(2026, 10, 26, 0, 30), utc(2026, 10, 26, 2, 30)),
        (utc(2026, 10, 27, 0, 30), utc(2026, 10, 27, 2, 30)),
    ]
    for found in through_everything(series, session, owner):
        assert found == expected


def test_a_series_across_the_fall_back_night_keeps_its_length(session: Session, owner: str) -> None:
    """01:30 to 02:30 every day: an hour on the night the clock is set back too (02:30 is the first one)."""
    series = event(
        "DTSTART;TZID=Europe/Amsterdam:20261024T013000\nDTEND;TZID=Europe/Amsterdam:20261024T023000\n"
        "RRULE:FREQ=DAILY;COUNT=3"
    )
    for found in through_everything(series, session, owner):
        assert [e - s for s, e in found] == [timedelta(hours=1)] * 3
        assert found[1] == (utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 0, 30))
