"""Times in the second pass of a repeated hour (a clock set back) keep their instant everywhere.

On 25 October 2026 Amsterdam's clocks go from 03:00 CEST back to 02:00 CET, so 02:30 happens twice:
at 00:30Z and at 01:30Z. An event from 01:30 to the second 02:30 lasts two hours. Python compares
and subtracts two times of one zone on the wall clock (PEP 495), which made syncd refuse an event
from 02:45 (first pass) to 02:15 (second pass) as "ends before it starts" and shorten others by an
hour. Each event here goes iCalendar -> CRM (SQLite and PostgreSQL) -> iCalendar, and through the EWS
mapping, and must come back with the same instants.

A start in the second pass cannot be written as a TZID local time either (it names the first pass):
a single item's DTSTART is written in UTC with its zone kept beside it, a series' as its wall time
with an override that puts the first occurrence at its instant (see syncd.mapping.ical_repeated_hour).
Each such activity goes CRM -> iCalendar -> CRM and must come back as the CRM holds it (zone included),
with the occurrences a CalDAV client (recurring-ical-events) shows equal to the CRM's, and through a
schema-valid EWS item. Graph's wall times are as ambiguous: such a time goes there in UTC.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from ews_schema import assert_valid
from icalendar import Calendar
from mapping.ews_support import create_payload, reparse
from sqlalchemy.orm import Session

from syncd.errors import ItemError
from syncd.mapping import graph_props as gp
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import from_ews, to_ews
from syncd.mapping.fingerprint import canonical
from syncd.mapping.graph import event_from_graph, event_patch, event_to_graph
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.ical_time import kept_zone
from syncd.mapping.occurrences import occurrences
from syncd.model import Activity, CrmUser, Kind, Override, Recurrence
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


def instants(activity: Activity, window: tuple[datetime, datetime] = NIGHT) -> list[tuple[datetime, datetime]]:
    return [(s.astimezone(UTC), e.astimezone(UTC)) for s, e in occurrences(activity, *window)]  # type: ignore[union-attr]


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


# ------------------------------------------------------------------------------- starts in the second pass

AMS = ZoneInfo("Europe/Amsterdam")


def second(hour: int, minute: int) -> datetime:
    """A wall time of the repeated hour on 25 October 2026, in its second pass (CET)."""
    return datetime(2026, 10, 25, hour, minute, fold=1, tzinfo=AMS)


def local(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=AMS)


def crm_event(start: datetime, end: datetime | None, rrule: str | None = None, **recurrence: object) -> Activity:
    return Activity(
        id="night-1", kind=Kind.APPOINTMENT, subject="Night shift", owner="anna@example.com", start=start, end=end,
        timezone="Europe/Amsterdam",
        recurrence=None if rrule is None else Recurrence(rrule=rrule, **recurrence),  # type: ignore[arg-type]
    )


SCHEDULE = ("start", "end", "due", "timezone", "recurrence")


def shown(data: bytes, window: tuple[datetime, datetime] = NIGHT) -> list[tuple[datetime, datetime]]:
    """The occurrences a CalDAV client shows for the item (recurring-ical-events), as instants."""
    found = recurring_ical_events.of(Calendar.from_ical(data), components=["VEVENT", "VTODO"]).between(*window)
    result = []
    for item in found:
        start = item["DTSTART"].dt
        end = item["DTEND" if item.name == "VEVENT" else "DUE"].dt
        result.append((start.astimezone(UTC), end.astimezone(UTC)))
    return sorted(result)


def without_hidden(data: bytes) -> bytes:
    """The item as a client that drops every X-property rewrites it."""
    return re.sub(rb"\r\nX-[^\r]*", b"", data)


def crm_round_trip(
    crm: Activity, session: Session, owner: str, exchange: bool = True, window: tuple[datetime, datetime] = NIGHT
) -> bytes:
    """The CRM's activity through the store and out to iCalendar and back, and through the EWS mapping
    (``exchange``): the same schedule (instants, zone, overrides) everywhere, the same occurrences in a
    CalDAV client."""
    crm = crm.replace(owner=owner)
    assert activity_problems(crm) == []
    repository.save_activity(session, crm)
    session.commit()
    kept = repository.get_activity(session, crm.id)
    assert kept is not None
    assert canonical(kept, SCHEDULE) == canonical(crm, SCHEDULE)
    data = to_ical(kept, CTX)
    if crm.is_event:
        assert instants(crm, window)
        assert shown(data, window) == instants(crm, window)
    again = from_ical(data, CTX, "night").activity
    assert canonical(again, SCHEDULE) == canonical(crm, SCHEDULE)
    # Written again from what was read, or over itself as an update: the same item (nothing to do next pass).
    assert to_ical(again.replace(owner=owner, updated_at=kept.updated_at, created_at=kept.created_at), CTX) == data
    assert to_ical(kept, CTX, base=data) == data
    if not exchange:
        return data
    item = to_ews(kept, CTX)
    assert_valid(create_payload(item))
    if crm.is_event:
        # A CreateItem holds the series; changed and deleted occurrences are requests of their own.
        rule = crm.recurrence
        series = crm if rule is None else crm.replace(recurrence=replace(rule, overrides=(), exdates=()))
        back = from_ews(reparse(item), CTX).activity
        assert instants(back) == instants(series)
        assert back.timezone == crm.timezone
    return data


def test_a_single_event_starting_in_the_second_pass_keeps_its_instant_and_zone(session: Session, owner: str) -> None:
    """02:30 CET (the second one) to 03:30: DTSTART in UTC, the zone in X-SYNCD-TZID and in DTEND."""
    crm = crm_event(second(2, 30), local(25, 3, 30))
    data = crm_round_trip(crm, session, owner)
    assert b"DTSTART:20261025T013000Z" in data
    assert instants(crm) == [(utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 30))]
    # A client that drops syncd's X-properties still says the zone in DTEND.
    bare = from_ical(without_hidden(data), CTX, "night").activity
    assert (bare.start, bare.timezone) == (crm.start, "Europe/Amsterdam")
    assert bare.start is not None and bare.start.utcoffset() == timedelta(hours=1)


def test_an_event_wholly_in_the_second_pass_keeps_its_zone_in_syncds_data(session: Session, owner: str) -> None:
    """02:15 to 02:45, both CET: both in UTC; only X-SYNCD-TZID says the zone. Without it the item says
    UTC, and is read so (same instants)."""
    crm = crm_event(second(2, 15), second(2, 45))
    data = crm_round_trip(crm, session, owner)
    assert instants(crm) == [(utc(2026, 10, 25, 1, 15), utc(2026, 10, 25, 1, 45))]
    bare = from_ical(without_hidden(data), CTX, "night").activity
    assert instants(bare) == instants(crm)
    assert bare.timezone is None


def test_a_task_starting_in_the_second_pass(session: Session, owner: str) -> None:
    task = Activity(id="night-task", kind=Kind.TASK, subject="Check the backup", owner="anna@example.com",
                    start=second(2, 10), due=local(25, 9, 0), timezone="Europe/Amsterdam")
    data = crm_round_trip(task, session, owner)
    assert b"DTSTART:20261025T011000Z" in data
    assert shown(data) == [(utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 8, 0))]


SERIES = [
    # Three hours from the second 02:30, every day: each occurrence three hours (the first crosses no change).
    crm_event(second(2, 30), local(25, 5, 30), "FREQ=DAILY;COUNT=3"),
    # Half an hour within the second pass.
    crm_event(second(2, 15), second(2, 45), "FREQ=DAILY;COUNT=3"),
    # The first occurrence changed in the CRM (its own subject), and one moved to another time.
    crm_event(second(2, 30), local(25, 3, 30), "FREQ=DAILY;COUNT=3", overrides=(
        Override(recurrence_id=second(2, 30), subject="First night"),
        Override(recurrence_id=local(26, 2, 30), start=local(26, 4, 0), end=local(26, 5, 0)),
    )),
    # The first occurrence moved: its RECURRENCE-ID is the time the DTSTART names.
    crm_event(second(2, 30), local(25, 3, 30), "FREQ=DAILY;COUNT=3", overrides=(
        Override(recurrence_id=second(2, 30), start=local(25, 6, 0), end=local(25, 7, 0)),
    )),
    # The first occurrence excluded: an EXDATE at the time DTSTART names, and no override.
    crm_event(second(2, 30), local(25, 3, 30), "FREQ=DAILY;COUNT=3", exdates=(second(2, 30),)),
]


def test_a_series_starting_in_the_second_pass(session: Session, owner: str) -> None:
    """DTSTART at the wall time (its rule runs on the wall clock) and an override for the first
    occurrence; read back it is the CRM's series again, without that override."""
    for n, crm in enumerate(SERIES):
        data = crm_round_trip(crm.replace(id=f"night-{n}"), session, owner)
        assert b"DTSTART;TZID=Europe/Amsterdam:20261025T0" in data
        assert instants(crm)[-1][0] == utc(2026, 10, 27, 1, crm.start.minute)  # type: ignore[union-attr]


def test_another_clients_series_whose_first_occurrence_is_moved(session: Session, owner: str) -> None:
    """A series at 02:30 (which names the first pass) whose first occurrence another client moved to 06:00:
    read as the series from the second 02:30 (its start is no occurrence either way), the occurrences are
    the calendar's, here and written back."""
    data = event(
        "DTSTART;TZID=Europe/Amsterdam:20261025T023000\nDTEND;TZID=Europe/Amsterdam:20261025T043000\n"
        "RRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT\nBEGIN:VEVENT\nUID:night-shift\nDTSTAMP:20260101T000000Z\n"
        "SUMMARY:Night shift\nRECURRENCE-ID;TZID=Europe/Amsterdam:20261025T023000\n"
        "DTSTART;TZID=Europe/Amsterdam:20261025T060000\nDTEND;TZID=Europe/Amsterdam:20261025T070000"
    )
    calendar = [
        (utc(2026, 10, 25, 5, 0), utc(2026, 10, 25, 6, 0)),
        (utc(2026, 10, 26, 1, 30), utc(2026, 10, 26, 3, 30)),
        (utc(2026, 10, 27, 1, 30), utc(2026, 10, 27, 3, 30)),
    ]
    assert shown(data) == calendar
    read = from_ical(data, CTX, "night").activity
    assert read.start == second(2, 30) and read.start.utcoffset() == timedelta(hours=1)  # type: ignore[union-attr]
    assert instants(read) == calendar
    assert shown(crm_round_trip(read, session, owner)) == calendar


def test_occurrences_in_the_second_pass_are_written_in_utc(session: Session, owner: str) -> None:
    """A daily series at 01:00: an extra occurrence (RDATE) at the second 02:10, one moved to the second
    02:40 (an override), one more excluded again (EXDATE): all in UTC, exact."""
    crm = crm_event(local(24, 1, 0), local(24, 1, 30), "FREQ=DAILY;COUNT=3", rdates=(second(2, 10), second(2, 50)),
                    exdates=(second(2, 50),),
                    overrides=(Override(recurrence_id=local(26, 1, 0), start=second(2, 40), end=local(25, 3, 10)),))
    data = crm_round_trip(crm, session, owner, exchange=False)  # Exchange refuses RDATEs (outlook_recurrence)
    for line in (b"RDATE:20261025T011000Z", b"EXDATE:20261025T015000Z", b"DTSTART:20261025T014000Z"):
        assert line in data
    assert instants(crm) == [
        (utc(2026, 10, 23, 23, 0), utc(2026, 10, 23, 23, 30)),
        (utc(2026, 10, 24, 23, 0), utc(2026, 10, 24, 23, 30)),
        (utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 1, 40)),
        (utc(2026, 10, 25, 1, 40), utc(2026, 10, 25, 2, 10)),
    ]


# A calendar's own zone (kept with its VTIMEZONE, see test_kept_timezone): +11:30 back to +10:30 at 02:00
# on 29 March, so 01:30 happens twice there.
MADE_UP = (
    "BEGIN:VTIMEZONE\r\nTZID:Made up\r\n"
    "BEGIN:STANDARD\r\nDTSTART:20000329T020000\r\nTZOFFSETFROM:+1130\r\nTZOFFSETTO:+1030\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=29\r\nTZNAME:MUST\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:20001007T020000\r\nTZOFFSETFROM:+1030\r\nTZOFFSETTO:+1130\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=7\r\nTZNAME:MUDT\r\nEND:DAYLIGHT\r\n"
    "END:VTIMEZONE\r\n"
)


def test_a_kept_zone_keeps_its_definition_when_only_syncds_data_names_it(session: Session, owner: str) -> None:
    """An event wholly in the second pass of a calendar's own zone: DTSTART and DTEND in UTC, the zone
    in X-SYNCD-TZID and its VTIMEZONE written all the same; and a weekly series from that time."""
    zone = kept_zone(MADE_UP)
    start = datetime(2026, 3, 29, 1, 30, fold=1, tzinfo=zone)
    end = datetime(2026, 3, 29, 1, 45, fold=1, tzinfo=zone)
    single = crm_event(start, end).replace(timezone="Made up", timezone_definition=MADE_UP)
    march = (datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 20, tzinfo=UTC))
    data = crm_round_trip(single, session, owner, exchange=False, window=march)  # Exchange refuses such a zone
    assert b"DTSTART:20260328T150000Z" in data and b"TZID:Made up" in data
    series = single.replace(id="night-2", end=datetime(2026, 3, 29, 3, 0, tzinfo=zone),
                            recurrence=Recurrence("FREQ=WEEKLY;COUNT=3"))
    crm_round_trip(series, session, owner, exchange=False, window=march)
    assert len(instants(series, march)) == 3


def graph_read(body: dict[str, Any]) -> dict[str, Any]:
    """The event as Graph gives it back (times in UTC, as syncd asks for them; the zones it was given)."""
    read = deepcopy(body)
    read.update(id="AAMkNight", changeKey="ck1", type="singleInstance", originalStartTimeZone=body["start"]["timeZone"],
                originalEndTimeZone=body["end"]["timeZone"], lastModifiedDateTime="2026-10-01T10:00:00Z")
    for name in ("start", "end"):
        at = gp.instant(body[name])
        assert at is not None
        read[name] = {"dateTime": at.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}
    return read


def test_graph_gets_a_time_in_the_second_pass_in_utc() -> None:
    """Graph's dateTime and timeZone cannot say which 02:30 is meant either: the second one goes in UTC,
    and the event keeps the CRM's zone when read back; the next pass has nothing to change."""
    for crm in (crm_event(second(2, 30), local(25, 3, 30)), crm_event(local(25, 1, 30), second(2, 30))):
        body = event_to_graph(crm, CTX, invitations=False)
        at_second = [body[name] for name in ("start", "end") if body[name]["timeZone"] == "UTC"]
        assert len(at_second) == 1 and at_second[0]["dateTime"].startswith("2026-10-25T01:30")
        read = graph_read(body)
        back = event_from_graph(read, CTX).activity
        assert instants(back) == instants(crm)
        assert back.timezone == "Europe/Amsterdam"
        assert event_patch(read, event_to_graph(back, CTX, invitations=False)) == {}


def test_graph_refuses_a_series_starting_in_the_second_pass() -> None:
    """Outlook runs a series on its start's clock: started in UTC it would move an hour at the next change."""
    with pytest.raises(ItemError, match="second pass"):
        event_to_graph(SERIES[0], CTX, invitations=False)
