"""Every valid RFC 5545 item is read, kept and written back; what syncd cannot keep is one item's error.

Each test is a shape of real calendars that syncd used to refuse or change: RDATE, several RRULEs, RSCALE
(RFC 7529), alarms after the start or relative to a to-do's due, a DATE-valued COMPLETED, bookkeeping
times no one can read, and a series delivered as occurrences without their master (Google invitations).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar

from syncd.activity_json import activity_from_json, activity_to_json
from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import to_ews
from syncd.mapping.ews_recurrence import UnsupportedRecurrence
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.occurrences import occurrences
from syncd.model import Activity, CrmUser, Kind, Recurrence
from syncd.store import repository
from syncd.store.db import make_engine, session_factory, upgrade

CTX = MappingContext(owner=CrmUser("owner@example.com", "Owner", "Europe/Amsterdam"))
BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))


def calendar(*components: str) -> bytes:
    body = "".join(f"BEGIN:{c.split(chr(10))[0]}\n{c.split(chr(10), 1)[1]}\n" for c in components)
    text = f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{body}END:VCALENDAR\n"
    return text.replace("\n", "\r\n").encode()


def event(body: str, uid: str = "e1") -> str:
    return f"VEVENT\nUID:{uid}\nDTSTAMP:20260101T000000Z\nSUMMARY:Meeting\n{body}\nEND:VEVENT"


def shown(data: bytes) -> list[tuple[datetime, datetime]]:
    """What a CalDAV client shows: the occurrences recurring-ical-events expands, as UTC instants."""
    found = recurring_ical_events.of(Calendar.from_ical(data)).between(*WINDOW)
    return sorted((e["DTSTART"].dt.astimezone(UTC), e["DTEND"].dt.astimezone(UTC)) for e in found)


def expanded(activity: Activity) -> list[tuple[datetime, datetime]]:
    """What syncd holds: its own expansion of the activity."""
    return sorted(
        (s.astimezone(UTC), e.astimezone(UTC))  # type: ignore[union-attr]
        for s, e in occurrences(activity, *WINDOW)
    )


def read_write_read(data: bytes) -> tuple[Activity, bytes]:
    activity = from_ical(data, CTX, "item").activity
    written = to_ical(activity, CTX, data)
    assert from_ical(written, CTX, "again").activity == activity
    return activity, written


# --- RDATE and several RRULEs -------------------------------------------------------------------------


def test_rdates_are_kept_expanded_and_written_back() -> None:
    """RDATE adds occurrences (a PERIOD one with its own length); syncd shows and writes the same ones."""
    data = calendar(event(
        "DTSTART;TZID=Europe/Berlin:20260105T090000\nDTEND;TZID=Europe/Berlin:20260105T100000\n"
        "RRULE:FREQ=WEEKLY;COUNT=3\nRDATE;TZID=Europe/Berlin:20260107T120000,20260108T120000\n"
        "RDATE;VALUE=PERIOD:20260110T080000Z/PT3H"
    ))
    activity, written = read_write_read(data)
    assert activity.recurrence is not None
    noon = datetime(2026, 1, 7, 12, tzinfo=BERLIN)
    assert activity.recurrence.rdates[:2] == (noon, noon + timedelta(days=1))
    assert b"RDATE" in written
    assert len(shown(data)) == 6
    assert expanded(activity) == shown(data) == shown(written)


def test_a_series_of_rdates_only() -> None:
    """No RRULE at all, only RDATEs (RFC 5545 allows it): every date is an occurrence."""
    data = calendar(event("DTSTART;VALUE=DATE:20260105\nRDATE;VALUE=DATE:20260301,20260210"))
    activity, written = read_write_read(data)
    assert activity.recurrence == Recurrence(rrule="", rdates=(date(2026, 3, 1), date(2026, 2, 10)))
    assert b"RRULE" not in written
    days = [s for s, _ in occurrences(activity, date(2026, 1, 1), date(2026, 6, 1))]
    assert days == [date(2026, 1, 5), date(2026, 2, 10), date(2026, 3, 1)]


def test_several_rrules_add_up_and_the_same_rule_twice_is_one() -> None:
    data = calendar(event(
        "DTSTART:20260105T090000Z\nDTEND:20260105T093000Z\nRRULE:FREQ=WEEKLY;COUNT=4\n"
        "RRULE:FREQ=WEEKLY;COUNT=4\nRRULE:FREQ=MONTHLY;BYDAY=1FR;COUNT=3"
    ))
    activity, written = read_write_read(data)
    assert activity.recurrence is not None
    assert activity.recurrence.rrule == "FREQ=WEEKLY;COUNT=4"
    assert activity.recurrence.extra_rrules == ("FREQ=MONTHLY;COUNT=3;BYDAY=1FR",)
    assert written.count(b"RRULE:") == 2
    assert len(shown(data)) == 7
    assert expanded(activity) == shown(data) == shown(written)


def test_exchange_refuses_what_one_pattern_cannot_express() -> None:
    """Exchange has one pattern per series and no added dates: such an item is refused there, with the reason."""
    base = Activity(
        id="a1", kind=Kind.APPOINTMENT, subject="x", owner="owner@example.com", timezone="Europe/Berlin",
        start=datetime(2026, 1, 5, 9, tzinfo=BERLIN), end=datetime(2026, 1, 5, 10, tzinfo=BERLIN),
    )
    two = Recurrence("FREQ=WEEKLY", extra_rrules=("FREQ=MONTHLY;BYDAY=1FR",))
    with pytest.raises(UnsupportedRecurrence, match="several recurrence rules"):
        to_ews(base.replace(recurrence=two), CTX)
    dated = Recurrence("FREQ=WEEKLY", rdates=(datetime(2026, 1, 7, 9, tzinfo=BERLIN),))
    with pytest.raises(UnsupportedRecurrence, match="RDATE"):
        to_ews(base.replace(recurrence=dated), CTX)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("RSCALE=HEBREW;FREQ=YEARLY;BYMONTH=5L;BYMONTHDAY=8;SKIP=FORWARD", "RSCALE"),
        ("FREQ=WEEKLYY;BYDAY=MO", "RRULE"),
        ("FREQ=WEEKLY;BYDAY=XX", "RRULE"),
    ],
)
def test_rules_syncd_cannot_expand_are_one_items_error(rule: str, reason: str) -> None:
    """RFC 7529 rules and typo'd rules: an ItemError with a reason, never an exception that ends a pass."""
    with pytest.raises(ItemError) as info:
        from_ical(calendar(event(f"DTSTART:20260105T090000Z\nRRULE:{rule}")), CTX, "item")
    assert info.value.item == "item" and reason in str(info.value)


def test_an_empty_rrule_is_one_event_as_clients_show_it() -> None:
    """``RRULE:`` (a real holiday feed) has no FREQ: clients show one event, and so does syncd."""
    data = calendar(event("DTSTART;VALUE=DATE:20261003\nRRULE:"))
    activity = from_ical(data, CTX, "item").activity
    assert activity.recurrence is None and activity.start == date(2026, 10, 3)


# --- alarms, COMPLETED and bookkeeping ---------------------------------------------------------------


def todo(body: str) -> str:
    return f"VTODO\nUID:t1\nDTSTAMP:20260101T000000Z\nSUMMARY:Offer\n{body}\nEND:VTODO"


def test_a_todos_reminder_before_the_deadline_is_kept() -> None:
    """TRIGGER;RELATED=END:-PT15M on a to-do with a start: rings 15 minutes before DUE, after the start."""
    data = calendar(todo(
        "DTSTART:20260105T090000Z\nDUE:20260105T170000Z\n"
        "BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:due\nTRIGGER;RELATED=END:-PT15M\nEND:VALARM"
    ))
    activity, written = read_write_read(data)
    assert activity.reminder_minutes == -(8 * 60 - 15)
    alarm = Calendar.from_ical(written).walk("VALARM")
    assert len(alarm) == 1 and alarm[0]["TRIGGER"].params["RELATED"] == "END"
    # Moved by the CRM, the reminder still rings 7 h 45 min after the start.
    moved = from_ical(to_ical(activity.replace(reminder_minutes=-60), CTX, data), CTX, "moved").activity
    assert moved.reminder_minutes == -60


def test_an_alarm_after_the_start_is_kept() -> None:
    data = calendar(event(
        "DTSTART:20260105T090000Z\nDTEND:20260105T100000Z\n"
        "BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:x\nTRIGGER:PT10M\nEND:VALARM"
    ))
    activity, _ = read_write_read(data)
    assert activity.reminder_minutes == -10
    with pytest.raises(ItemError, match="after an appointment starts"):
        to_ews(activity, CTX)


def test_a_date_valued_completed_is_read() -> None:
    data = calendar(todo("DUE;VALUE=DATE:20260110\nSTATUS:COMPLETED\nCOMPLETED;VALUE=DATE:20260108"))
    activity = from_ical(data, CTX, "item").activity
    assert activity.completed_at == datetime(2026, 1, 8, tzinfo=ZoneInfo("Europe/Amsterdam"))


@pytest.mark.parametrize(
    "stamps",
    ["CREATED:00010101T000000Z", "CREATED:yesterday", "LAST-MODIFIED:2026-13-45", "CREATED:00010101T000000\nX-A:1"],
)
def test_bookkeeping_times_never_refuse_an_item(stamps: str) -> None:
    """CREATED/LAST-MODIFIED/DTSTAMP are shown to no one: .NET's MinValue or text is kept out, the item read."""
    data = calendar(event(f"DTSTART:20260105T090000Z\n{stamps}").replace("DTSTAMP:20260101T000000Z", "DTSTAMP:x"))
    activity = from_ical(data, CTX, "item").activity
    assert activity.start == datetime(2026, 1, 5, 9, tzinfo=UTC)
    if stamps.startswith("CREATED:00010101T000000Z"):
        assert activity.created_at == datetime(1, 1, 1, tzinfo=UTC)


# --- occurrences without their master ----------------------------------------------------------------


GOOGLE_INVITATION = calendar(
    event("RECURRENCE-ID:20260112T090000Z\nDTSTART:20260112T100000Z\nDTEND:20260112T110000Z", "g1"),
    event(
        "RECURRENCE-ID:20260105T090000Z\nDTSTART:20260105T090000Z\nDTEND:20260105T100000Z\n"
        "X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij",
        "g1",
    ),
    event(
        "RECURRENCE-ID:20260119T090000Z\nDTSTART:20260119T090000Z\nDTEND:20260119T100000Z\nLOCATION:Room 2",
        "g1",
    ),
)


def test_occurrences_without_a_master_are_kept_whole() -> None:
    """Google invites to three occurrences of a series the calendar does not hold: all three are kept,
    moved and changed ones as they are, and written back they are the same three."""
    activity, written = read_write_read(GOOGLE_INVITATION)
    assert activity.start == datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert activity.recurrence is not None and len(activity.recurrence.rdates) == 2
    assert [o.location for o in activity.recurrence.overrides if o.location] == ["Room 2"]
    assert len(shown(GOOGLE_INVITATION)) == 3
    assert expanded(activity) == shown(GOOGLE_INVITATION) == shown(written)
    assert b"X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij" in written  # Google's data kept


def test_one_occurrence_without_a_master_is_one_event() -> None:
    data = calendar(event("RECURRENCE-ID:20260112T090000Z\nDTSTART:20260112T100000Z\nDTEND:20260112T110000Z"))
    activity = from_ical(data, CTX, "item").activity
    assert activity.recurrence is None and activity.start == datetime(2026, 1, 12, 10, tzinfo=UTC)


# --- time zones ---------------------------------------------------------------------------------------


def outlook_sydney(onsets: str, year: int) -> bytes:
    """Outlook's "Customized Time Zone" with Sydney's rules, and a Mon-Fri stand-up in it."""
    zone = (
        "VTIMEZONE\nTZID:Customized Time Zone\n"
        f"BEGIN:STANDARD\nDTSTART:{onsets}T030000\nTZOFFSETFROM:+1100\nTZOFFSETTO:+1000\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=4\nEND:STANDARD\n"
        f"BEGIN:DAYLIGHT\nDTSTART:{onsets}T020000\nTZOFFSETFROM:+1000\nTZOFFSETTO:+1100\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=10\nEND:DAYLIGHT\nEND:VTIMEZONE"
    )
    return calendar(zone, event(
        f"DTSTART;TZID=Customized Time Zone:{year}0105T090000\nDTEND;TZID=Customized Time Zone:{year}0105T091500\n"
        "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
    ))


@pytest.mark.parametrize(("onsets", "year"), [("16010101", 2026), ("20240101", 2020), ("20080101", 2005)])
def test_an_outlook_zone_is_matched_by_its_own_rules(onsets: str, year: int) -> None:
    """Matched over the years its onsets cover, also for an item before them: the stand-up stays Mon-Fri
    09:00 in Sydney."""
    activity = from_ical(outlook_sydney(onsets, year), CTX, "item").activity
    assert activity.timezone == "Australia/Sydney"
    sydney = ZoneInfo("Australia/Sydney")
    # From the week after DTSTART, which is an occurrence whatever its weekday (a Sunday in 2020).
    later = (datetime(year, 1, 12, tzinfo=UTC), datetime(year, 12, 31, tzinfo=UTC))
    starts = [s for s, _ in occurrences(activity, *later)]
    assert {s.astimezone(sydney).weekday() for s in starts} == {0, 1, 2, 3, 4}  # type: ignore[union-attr]
    assert {s.astimezone(sydney).hour for s in starts} == {9}  # type: ignore[union-attr]


# --- the CRM keeps it ----------------------------------------------------------------------------------


def test_what_was_read_is_kept_by_the_store_and_the_exchange_format(tmp_path: Path) -> None:
    """RDATEs from year 1 to 9999 with no rule, several rules, a reminder after the start, year-1 CREATED:
    saved to SQLite and loaded, exported and imported, all unchanged."""
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    dated = Activity(
        id="r1", kind=Kind.APPOINTMENT, subject="Days", owner="owner@example.com", all_day=True,
        start=date(1, 1, 1), end=date(1, 1, 2), reminder_minutes=-90, created_at=datetime(1, 1, 1, tzinfo=UTC),
        recurrence=Recurrence(rrule="", rdates=(date(1, 1, 3), date(9999, 12, 31))),
    )
    ruled = from_ical(calendar(event(
        "DTSTART:20260105T090000Z\nRRULE:FREQ=WEEKLY;COUNT=4\nRRULE:FREQ=MONTHLY;BYDAY=1FR;COUNT=3\n"
        "RDATE:20260107T120000Z"
    )), CTX, "item").activity
    with session_factory(engine)() as session:
        repository.add_user(session, CTX.owner)
        for activity in (dated, ruled):
            repository.save_activity(session, activity)
            session.commit()
            loaded = repository.get_activity(session, activity.id)
            assert loaded is not None
            # The store stamps the times not given; the rest is as read.
            assert loaded.replace(updated_at=None, created_at=None) == activity.replace(created_at=None)
            assert activity.created_at is None or loaded.created_at == activity.created_at
            exported = json.loads(json.dumps(activity_to_json(activity)))
            assert activity_from_json(exported) == activity.replace(created_at=None)  # the format has no created_at
    engine.dispose()
