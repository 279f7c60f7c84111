"""What Exchange gets of real calendars' items: times of any year in a form its schema accepts, the DST gap,
a task's location, reminders after the start, and a cancelled occurrence."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from ews_schema import assert_valid
from exchangelib.recurrence import Occurrence

from mapping.ews_support import create_payload, reparse
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import from_ews, to_ews
from syncd.mapping.ical import from_ical
from syncd.mapping.outlook_recurrence import occurrence_changes
from syncd.model import Activity, CrmUser, Kind, Override, Recurrence

AMS = ZoneInfo("Europe/Amsterdam")
CTX = MappingContext(owner=CrmUser("owner@example.com", timezone="Europe/Amsterdam"))
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"


def through_exchange(activity: Activity) -> tuple[Activity, dict[str, str]]:
    """The activity read back from the EWS item made of it, and the Start/End the request sends."""
    item = to_ews(activity, CTX)
    payload = create_payload(item)
    assert_valid(payload)
    sent = {e.tag.removeprefix(T): e.text or "" for e in payload.iter(f"{T}Start", f"{T}End")}
    return from_ews(reparse(item), CTX).activity, sent


def appointment(**fields: object) -> Activity:
    return Activity(id="a1", kind=Kind.APPOINTMENT, subject="Old", owner="owner@example.com", **fields)  # type: ignore[arg-type]


def test_an_all_day_date_before_1937_is_valid_and_keeps_its_day() -> None:
    """Amsterdam kept local mean time (+00:19:32, +01:19:32 in summer) until 1937: no xs:dateTime offset."""
    for day in (date(1931, 5, 25), date(1900, 1, 1), date(1, 1, 1)):
        activity = appointment(start=day, end=day.replace(day=day.day + 1), all_day=True, timezone="Europe/Amsterdam")
        back, sent = through_exchange(activity)
        assert (back.start, back.end) == (activity.start, activity.end)
        assert all(len(value.split("-")[0]) == 4 for value in sent.values()), sent  # schema-valid, checked above too


def test_a_time_in_local_mean_time_is_sent_as_its_utc_instant() -> None:
    start = datetime(1900, 5, 25, 9, tzinfo=AMS)
    back, sent = through_exchange(appointment(start=start, end=start.replace(hour=10), timezone="Europe/Amsterdam"))
    assert sent["Start"] == "1900-05-25T08:40:28+00:00"
    assert back.start == start and back.timezone == "Europe/Amsterdam"


def test_an_end_in_the_spring_forward_gap_comes_back_unchanged() -> None:
    """DTEND 02:30 on the night clocks go from 02:00 to 03:00 is 03:30 (RFC 5545 3.3.5): read so, Exchange
    gives back exactly what syncd read."""
    data = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:gap\r\nSUMMARY:Night shift\r\n"
        b"DTSTART;TZID=Europe/Amsterdam:20300331T013000\r\nDTEND;TZID=Europe/Amsterdam:20300331T023000\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    read = from_ical(data, CTX, "gap").activity
    assert read.end == datetime(2030, 3, 31, 3, 30, tzinfo=AMS)
    assert read.end is not None and read.end.utcoffset() == datetime(2030, 3, 31, 3, 30, tzinfo=AMS).utcoffset()
    back, _ = through_exchange(read)
    assert (back.start, back.end) == (read.start, read.end)
    assert (back.end.hour, back.end.minute) == (3, 30)  # type: ignore[union-attr]


def test_a_tasks_location_and_a_reminder_after_its_due_survive_exchange() -> None:
    task = Activity(
        id="t1", kind=Kind.TASK, subject="Offerte", owner="owner@example.com", location="Kantoor Utrecht",
        due=datetime(2030, 3, 25, 17, tzinfo=AMS), timezone="Europe/Amsterdam", reminder_minutes=-30,
    )
    back, _ = through_exchange(task)
    assert back.location == "Kantoor Utrecht"
    assert back.reminder_minutes == -30


def test_a_cancelled_occurrence_is_written_free_and_read_back_cancelled() -> None:
    """The CRM cancels one occurrence: the connector shows it free in Exchange (IsCancelled is Exchange's
    own), and reading the series back gives that occurrence cancelled, the others as they were."""
    start = datetime(2030, 3, 25, 9, tzinfo=AMS)
    rid = datetime(2030, 4, 1, 9, tzinfo=AMS)
    series = appointment(
        start=start, end=start.replace(hour=10), timezone="Europe/Amsterdam", status="planned",
        recurrence=Recurrence("FREQ=WEEKLY;COUNT=5", overrides=(Override(rid, status="cancelled"),)),
    )
    (change,) = occurrence_changes(series, service="ews")
    assert (change.original_start, change.status, change.delete) == (rid, "cancelled", False)
    assert CTX.options.status_target(change.status).ews_free_busy == "Free"

    master = reparse(to_ews(series, CTX))
    moved = rid.astimezone(UTC)
    master.modified_occurrences = [
        Occurrence(start=moved, end=moved.replace(hour=moved.hour + 1), original_start=moved),
    ]
    occurrence = reparse(to_ews(series.replace(recurrence=None, start=rid, end=rid.replace(hour=10)), CTX))
    occurrence.original_start = rid.astimezone(UTC)
    occurrence.legacy_free_busy_status = "Free"  # what the connector set
    back = from_ews(master, CTX, occurrences=[occurrence]).activity
    assert back.recurrence is not None
    assert [(o.recurrence_id, o.status) for o in back.recurrence.overrides] == [(rid, "cancelled")]
