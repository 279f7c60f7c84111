"""A calendar's own time zone that no IANA zone follows is kept with its VTIMEZONE, never moved to UTC.

The zone here is made up: +10:30 in winter and +11:30 in summer, changing on 7 October and 29 March
(no IANA zone has that offset pair). A stand-up Mon-Fri at 09:00 in it must stay Mon-Fri at 09:00 on
that clock through the CRM (SQLite) and back, with the very same VTIMEZONE written.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import recurring_ical_events
from icalendar import Calendar

from syncd.activity_json import activity_from_json, activity_to_json
from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import to_ews
from syncd.mapping.fingerprint import changed_fields, fingerprint
from syncd.mapping.graph import event_to_graph
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.occurrences import occurrences
from syncd.model import Activity, CrmUser
from syncd.store import repository
from syncd.store.db import make_engine, session_factory, upgrade
from syncd.store.rules import activity_problems

CTX = MappingContext(owner=CrmUser("owner@example.com", "Owner", "Europe/Amsterdam"))
# Over both clock changes of 2026 and into 2027.
SPAN = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))

ZONE = (
    "BEGIN:VTIMEZONE\nTZID:Made up\n"
    "BEGIN:STANDARD\nDTSTART:20000329T020000\nTZOFFSETFROM:+1130\nTZOFFSETTO:+1030\n"
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=29\nTZNAME:MUST\nEND:STANDARD\n"
    "BEGIN:DAYLIGHT\nDTSTART:20001007T020000\nTZOFFSETFROM:+1030\nTZOFFSETTO:+1130\n"
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=7\nTZNAME:MUDT\nEND:DAYLIGHT\n"
    "END:VTIMEZONE\n"
)


def calendar(body: str) -> bytes:
    text = (
        f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{ZONE}BEGIN:VEVENT\nUID:standup\n"
        f"DTSTAMP:20260101T000000Z\nSUMMARY:Stand-up\n{body}\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n").encode()


SERIES = calendar(
    "DTSTART;TZID=Made up:20260105T090000\nDTEND;TZID=Made up:20260105T091500\n"
    "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;UNTIL=20270115T000000Z\nEXDATE;TZID=Made up:20260407T090000"
)


def shown(data: bytes) -> list[tuple[datetime, datetime]]:
    """The occurrences a CalDAV client shows (recurring-ical-events), on the zone's own clock."""
    found = recurring_ical_events.of(Calendar.from_ical(data)).between(*SPAN)
    return sorted((e["DTSTART"].dt, e["DTEND"].dt) for e in found)


def vtimezones(data: bytes) -> list[bytes]:
    return [tz.to_ical() for tz in Calendar.from_ical(data).walk("VTIMEZONE")]


def through_store(activity: Activity, tmp_path: Path) -> Activity:
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            repository.add_user(session, CTX.owner)
            repository.save_activity(session, activity)
            session.commit()
            loaded = repository.get_activity(session, activity.id)
    finally:
        engine.dispose()
    assert loaded is not None
    return loaded


def test_a_weekday_series_in_a_made_up_zone_keeps_its_days_through_the_crm(tmp_path: Path) -> None:
    activity = from_ical(SERIES, CTX, "item").activity
    assert activity.timezone == "Made up"
    assert activity.timezone_definition is not None
    loaded = through_store(activity, tmp_path)
    assert loaded.replace(updated_at=None, created_at=None) == activity
    assert loaded.timezone_definition == activity.timezone_definition
    written = to_ical(loaded, CTX)

    before, after = shown(SERIES), shown(written)
    assert after == before
    # What the user sees: every working day at 09:00 on the zone's clock, in winter (+10:30) and in
    # summer (+11:30), but the one excluded day.
    assert {s.weekday() for s, _ in after} == {0, 1, 2, 3, 4}
    assert {(s.hour, s.minute) for s, _ in after} == {(9, 0)}
    assert {s.utcoffset() for s, _ in after} == {timedelta(hours=10, minutes=30), timedelta(hours=11, minutes=30)}
    assert datetime(2026, 4, 7, 9).date() not in {s.date() for s, _ in after}
    assert vtimezones(written) == vtimezones(SERIES)
    assert "DTSTART;TZID=Made up:20260105T090000" in written.decode()

    # syncd's own expansion (window checks, Exchange patterns) agrees with the clients'.
    own = sorted((s.astimezone(UTC), e.astimezone(UTC)) for s, e in occurrences(loaded, *SPAN))  # type: ignore[union-attr]
    assert own == [(s.astimezone(UTC), e.astimezone(UTC)) for s, e in before]


def test_the_exchange_format_keeps_the_zone() -> None:
    activity = from_ical(SERIES, CTX, "item").activity
    exported = json.loads(json.dumps(activity_to_json(activity)))
    assert exported["timezone"] == "Made up"
    assert exported["start"] == "2026-01-05T09:00:00+11:30"
    assert activity_from_json(exported) == activity


def test_a_single_event_in_a_made_up_zone_keeps_its_zone() -> None:
    data = calendar("DTSTART;TZID=Made up:20260705T090000\nDURATION:PT30M")
    activity = from_ical(data, CTX, "item").activity
    assert activity.timezone == "Made up"
    assert activity.start == datetime(2026, 7, 4, 22, 30, tzinfo=UTC)  # 09:00 at +10:30
    written = to_ical(activity, CTX)
    assert "DTSTART;TZID=Made up:20260705T090000" in written.decode()
    assert vtimezones(written) == vtimezones(data)


def test_exchange_refuses_the_item_with_a_reason() -> None:
    activity = from_ical(SERIES, CTX, "item").activity
    with pytest.raises(ItemError, match="cannot express a calendar's own time zone"):
        to_ews(activity, CTX)
    with pytest.raises(ItemError, match="cannot express a calendar's own time zone"):
        event_to_graph(activity, CTX, invitations=False)


def test_the_crm_rules_want_a_readable_definition_of_a_zone_that_is_no_iana_name() -> None:
    activity = from_ical(SERIES, CTX, "item").activity
    assert activity_problems(activity) == []
    definition = activity.timezone_definition
    assert definition is not None
    broken = {
        "no definition": activity.replace(timezone_definition=None),
        "not a VTIMEZONE": activity.replace(timezone_definition="BEGIN:VEVENT\r\nEND:VEVENT\r\n"),
        "another TZID": activity.replace(timezone="Other"),
        "an IANA name": activity.replace(timezone="Europe/Amsterdam", timezone_definition=definition.replace(
            "TZID:Made up", "TZID:Europe/Amsterdam")),
        "no zone": activity.replace(timezone=None),
    }
    for why, wrong in broken.items():
        assert [p.field for p in activity_problems(wrong)] in (["timezone"], ["timezone_definition"]), why


def test_a_repeated_hour_reads_as_its_first_pass() -> None:
    """On 29 March the clock goes back from 02:00 to 01:00, so 01:30 happens twice: RFC 5545 3.3.5 means
    the first (still +11:30), and written back it is that one again."""
    data = calendar("DTSTART;TZID=Made up:20260329T013000\nDTEND;TZID=Made up:20260329T015000")
    activity = from_ical(data, CTX, "item").activity
    assert isinstance(activity.start, datetime)
    # As an instant: Python never finds a time in a repeated hour equal to one in another zone (PEP 495).
    assert activity.start.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC) - timedelta(hours=11, minutes=30)
    assert "DTSTART;TZID=Made up:20260329T013000" in to_ical(activity, CTX).decode()


def test_a_respelled_definition_is_no_change_and_other_rules_are() -> None:
    """A server that reorders or annotates the VTIMEZONE changed nothing; one that moves a clock change did."""
    activity = from_ical(SERIES, CTX, "item").activity
    definition = activity.timezone_definition
    assert definition is not None
    respelled = definition.replace("TZNAME:MUST\r\n", "").replace(
        "BEGIN:STANDARD\r\n", "BEGIN:STANDARD\r\nCOMMENT:winter\r\nTZNAME:MUST\r\n"
    )
    moved = definition.replace("BYMONTHDAY=29", "BYMONTHDAY=22")
    assert fingerprint(activity.replace(timezone_definition=respelled)) == fingerprint(activity)
    assert changed_fields(activity, activity.replace(timezone_definition=moved)) == ["timezone_definition"]
