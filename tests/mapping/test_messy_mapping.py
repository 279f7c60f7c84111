"""Whatever a mapping accepts from a calendar, the store accepts and reads back, and mapping it out and
in again changes nothing: the rule set of syncd.store.rules holds across iCalendar, EWS and the store.
A raw item the mapping cannot represent is an ItemError, never another exception.

The store here is SQLite; tests/store/test_messy_round_trip.py covers both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy.orm import Session
from strategies import SYNCED, messy_activities, raw_icalendars

from mapping.ews_support import reparse
from syncd.activity_json import read_jsonl
from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import from_ews, to_ews
from syncd.mapping.fingerprint import changed_fields, fingerprint
from syncd.mapping.ical import from_ical, to_ical
from syncd.model import (
    Activity,
    CrmUser,
    Directory,
    Kind,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
)
from syncd.store import repository
from syncd.store.db import make_engine, session_factory, upgrade
from syncd.store.rules import activity_problems

OWNER = "owner@example.com"
CTX = MappingContext(
    owner=CrmUser(OWNER, "Owner", "Europe/Amsterdam"),
    directory=Directory(users={"jan@klant.nl": "Jan"}, contacts={"zoë@example.com": "Zoë"}),
)
#: Example counts keep the three properties near 30 s together on one core (the suite shares two).
_HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
MAPPING_SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=_HEALTH)
EWS_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=_HEALTH)
RAW_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=_HEALTH)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        repository.add_user(session, CrmUser(OWNER))
        session.commit()
        yield session
    engine.dispose()


def stored(session: Session, activity: Activity) -> Activity:
    """``activity`` saved and read back from the database, as the next pass sees it."""
    problems = activity_problems(activity)
    assert problems == [], problems  # the mapping accepted it: the store must too
    repository.save_activity(session, activity)
    session.commit()
    session.expunge_all()
    loaded = repository.get_activity(session, activity.id)
    assert loaded is not None
    repository.check_activity(loaded)
    assert changed_fields(loaded, activity) == []
    return loaded


def _undefined(activity: Activity) -> bool:
    return activity.start is None and activity.is_event


@MAPPING_SETTINGS
@given(activity=messy_activities(SYNCED, undated_events=False))
def test_ical_to_store_and_back_is_stable(session: Session, activity: Activity) -> None:
    data = to_ical(activity, CTX)
    mapped = from_ical(data, CTX, "item.ics").activity
    loaded = stored(session, mapped)
    again = from_ical(to_ical(loaded, CTX, base=data), CTX, "item.ics").activity
    assert changed_fields(again, mapped) == []
    assert fingerprint(again) == fingerprint(mapped)


@EWS_SETTINGS
@given(activity=messy_activities(SYNCED, undated_events=False, extreme_years=False))
def test_ews_to_store_and_back_is_stable(session: Session, activity: Activity) -> None:
    try:
        item = to_ews(activity, CTX)
    except ItemError:
        return  # a rule Exchange cannot express (FREQ=SECONDLY): refused per item, by design
    mapped = from_ews(reparse(item), CTX).activity
    loaded = stored(session, mapped)
    again = from_ews(reparse(to_ews(loaded, CTX)), CTX).activity
    assert changed_fields(again, mapped) == []


@RAW_SETTINGS
@given(raw=raw_icalendars())
def test_a_raw_item_maps_to_what_the_store_keeps_or_to_an_item_error(session: Session, raw: bytes) -> None:
    """Missing and empty properties, attendees without address or name, empty or broken rules,
    duplicates, other encodings: an ItemError, or an activity the store saves and reads back."""
    try:
        mapped = from_ical(raw, CTX, "raw.ics").activity
    except ItemError:
        return
    loaded = stored(session, mapped)
    assert fingerprint(loaded) == fingerprint(mapped)


# --- the cases the properties found, one by one ---------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "activities.jsonl"


def _ics(*props: str, component: str = "VEVENT") -> bytes:
    body = "\r\n".join(["BEGIN:VCALENDAR", f"BEGIN:{component}", "UID:odd-1", "DTSTART:20260302T090000Z", *props,
                        f"END:{component}", "END:VCALENDAR"])
    return (body + "\r\n").encode()


def test_the_readme_examples_go_to_a_calendar_and_back(session: Session) -> None:
    """ACT-1005 (two external participants, one without e-mail) stopped every pass."""
    for activity in read_jsonl(EXAMPLES.read_text(encoding="utf-8")):
        if activity.kind not in SYNCED:
            continue
        for user in {activity.owner, *(p.email for p in activity.participants if p.kind is ParticipantKind.USER)}:
            if user and repository.get_user(session, user) is None:
                repository.add_user(session, CrmUser(user))
        loaded = stored(session, activity)
        back = from_ical(to_ical(loaded, CTX), CTX, "x.ics").activity
        assert fingerprint(stored(session, back.replace(owner=activity.owner))) == fingerprint(back.replace(owner=activity.owner))


def test_attendees_that_name_no_one() -> None:
    a = from_ical(_ics(
        "ATTENDEE:urn:uuid:5c7a1b02", "ATTENDEE;CN=Room 1:urn:uuid:room-1", "ATTENDEE:", "ATTENDEE:mailto:",
        "ATTENDEE;X-SYNCD-KIND=user;CN=Bart:urn:uuid:bart", 'X-SYNCD-PARTICIPANT:{"kind":"external"}',
        'X-SYNCD-PARTICIPANT:{"kind":"user"\\,"name":"Tolk"}',
    ), CTX, "odd.ics").activity
    assert [(p.kind, p.email, p.name) for p in a.participants] == [
        (ParticipantKind.EXTERNAL, None, "urn:uuid:5c7a1b02"),  # its address is all there is
        (ParticipantKind.EXTERNAL, None, "Room 1"),
        (ParticipantKind.EXTERNAL, None, "Bart"),  # users are known by e-mail
        (ParticipantKind.EXTERNAL, None, "Tolk"),
    ]
    assert activity_problems(a) == []


def test_an_empty_rule_is_no_rule_and_a_rule_without_freq_is_the_items_error() -> None:
    assert from_ical(_ics("RRULE:"), CTX, "odd.ics").activity.recurrence is None
    with pytest.raises(ItemError, match='recurrence.rrule.*needs FREQ'):
        from_ical(_ics("RRULE:BYDAY=MO"), CTX, "odd.ics")


def test_what_the_store_cannot_keep_is_the_items_error() -> None:
    with pytest.raises(ItemError, match='field "id": is longer than 255'):
        from_ical(_ics("X-SYNCD-ID:" + "i" * 300), CTX, "odd.ics")
    with pytest.raises(ItemError, match="NUL"):
        from_ical(_ics("SUMMARY:a\x00b"), CTX, "odd.ics")
    blank = from_ical(_ics("X-SYNCD-ID:   "), CTX, "odd.ics").activity
    assert blank.id.startswith("cal-")  # a blank id names nothing: made on the calendar


def test_dotnet_min_value_and_a_utf16_export(session: Session) -> None:
    a = from_ical(_ics("CREATED:00010101T000000Z", "SUMMARY:Zażółć").decode().encode("utf-16"), CTX, "odd.ics").activity
    assert (a.created_at, a.subject) == (datetime(1, 1, 1, tzinfo=UTC), "Zażółć")
    assert stored(session, a.replace(id="min-value")).created_at == datetime(1, 1, 1, tzinfo=UTC)


def test_a_control_character_in_a_name_does_not_lose_the_attendee() -> None:
    """icalendar drops an ATTENDEE (or refuses the whole item) whose CN holds a C0 control or DEL: the
    CN shows the name without them, and syncd's own copy keeps the CRM's name as it is."""
    bell = Participant(ParticipantKind.CONTACT, "jan@klant.nl", "Jan\x07\x7f de Vries")
    a = Activity("A", Kind.APPOINTMENT, "s", OWNER, start=datetime(2026, 3, 2, 9, tzinfo=UTC), participants=(bell,))
    data = to_ical(a, CTX)
    assert b'CN="Jan de Vries"' in data.replace(b"\r\n ", b"")
    (back,) = from_ical(data, CTX, "x.ics").activity.participants
    assert (back.email, back.name) == ("jan@klant.nl", "Jan\x07\x7f de Vries")


def test_the_ends_of_the_calendar_are_written() -> None:
    """VTIMEZONE years were computed as year 0 and 10001; an override's end as 10000-01-01; a reminder
    as 15 minutes before 0001-01-01."""
    tokyo = ZoneInfo("Asia/Tokyo")
    first = Activity("A", Kind.APPOINTMENT, "s", OWNER, start=datetime(1, 1, 2, tzinfo=tokyo), timezone="Asia/Tokyo",
                     due=datetime(9999, 12, 30, tzinfo=tokyo))
    last = Activity("B", Kind.APPOINTMENT, "s", OWNER, all_day=True, start=date(9999, 12, 30), end=date(9999, 12, 31),
                    recurrence=Recurrence("FREQ=DAILY", overrides=(Override(date(9999, 12, 31), subject="last"),)))
    early = Activity("C", Kind.APPOINTMENT, "s", OWNER, all_day=True, start=date(1, 1, 1), reminder_minutes=15)
    for activity in (first, last, early):
        back = from_ical(to_ical(activity, CTX), CTX, "x.ics").activity
        assert activity_problems(back) == []
    assert from_ical(to_ical(early, CTX), CTX, "x.ics").activity.reminder_minutes == 15


def test_exchange_keeps_a_long_or_odd_type_whole_seconds_and_a_long_address() -> None:
    long_type = "Kundentermin \x92vor Ort\x92 " + "x" * 300  # a cp1252 quote read as a C1 control
    far = "a" * 64 + "@" + "b" * 251 + ".nl"
    a = Activity("E", Kind.APPOINTMENT, "s", OWNER, timezone="Europe/Amsterdam", type=long_type,
                 start=datetime(2030, 3, 4, 9, 0, 30, 500_000, tzinfo=ZoneInfo("Europe/Amsterdam")),
                 end=datetime(2030, 3, 4, 10, tzinfo=ZoneInfo("Europe/Amsterdam")),
                 participants=(Participant(ParticipantKind.EXTERNAL, far, "Far"),), place="caf\x85\x7f")
    back = from_ews(reparse(to_ews(a, CTX)), CTX).activity
    assert (back.type, back.place, back.participants) == (long_type, a.place, a.participants)
    assert back.start == a.start.replace(microsecond=0)


def test_exchange_task_in_the_calendar_owners_zone() -> None:
    """A timed task without its own zone is written in the calendar owner's zone; it is read in it too."""
    late = datetime(2030, 3, 4, 23, 30, tzinfo=UTC)  # already the 5th in Amsterdam
    task = Activity("T", Kind.TASK, "s", OWNER, start=late, due=late)
    back = from_ews(reparse(to_ews(task, CTX)), CTX).activity
    assert (back.start, back.due, back.all_day) == (late, late, False)


def test_a_task_due_in_9999_stays_small() -> None:
    """One VTIMEZONE over every year from now to a CRM's "never" (9999-12-31) made a 266 KB item in 2 s;
    the years around each time are described instead, and give the right offsets at both ends."""
    from icalendar import Calendar

    ams = ZoneInfo("Europe/Amsterdam")
    start, due = datetime(2026, 7, 2, 9, tzinfo=ams), datetime(9999, 7, 30, 12, tzinfo=ams)
    data = to_ical(Activity("T", Kind.TASK, "s", OWNER, start=start, due=due, timezone="Europe/Amsterdam"), CTX)
    assert len(data) < 5000
    (vtimezone,) = Calendar.from_ical(data).walk("VTIMEZONE")
    described = vtimezone.to_tz(lookup_tzid=False)
    assert [m.replace(tzinfo=described).utcoffset() for m in (start, due)] == [start.utcoffset(), due.utcoffset()]
