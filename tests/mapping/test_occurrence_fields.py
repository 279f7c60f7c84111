"""One occurrence's own reminder, privacy (CLASS / Sensitivity) and free/busy (TRANSP / LegacyFreeBusyStatus /
showAs): read into the CRM's override, written back, and the same after a round trip through each mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ews_schema import assert_valid
from exchangelib.recurrence import Occurrence
from icalendar import Calendar

from mapping.ews_support import reparse, update_payload
from mapping.test_graph import as_read
from syncd.activity_json import InvalidActivities, activity_from_json, activity_to_json
from syncd.errors import ItemError
from syncd.mapping import graph_props as gp
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import from_ews, to_ews
from syncd.mapping.ews_fields import occurrence_fields_out
from syncd.mapping.fingerprint import fingerprint
from syncd.mapping.graph import event_from_graph, event_to_graph, occurrence_patch
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.options import MappingOptions
from syncd.mapping.outlook_recurrence import OccurrenceChange, occurrence_changes
from syncd.model import Activity, CrmUser, Kind, Override, Recurrence, Sensitivity, ShowAs
from syncd.store.rules import activity_problems

AMS = ZoneInfo("Europe/Amsterdam")
OWNER = "owner@example.com"
CTX = MappingContext(owner=CrmUser(OWNER, "Anna", "Europe/Amsterdam"), options=MappingOptions())
FIRST = datetime(2026, 3, 2, 9, 0, tzinfo=AMS)
SECOND, THIRD, FOURTH = (FIRST + timedelta(weeks=n) for n in (1, 2, 3))

# A series: public, busy, a reminder 15 minutes before; its second occurrence is private, free and rings an
# hour before; its third rings nothing; its fourth is confidential and out of office.
SERIES_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:weekly-1@example.com
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Amsterdam:20260302T090000
DTEND;TZID=Europe/Amsterdam:20260302T100000
RRULE:FREQ=WEEKLY;COUNT=6
SUMMARY:Stand-up
CLASS:PUBLIC
TRANSP:OPAQUE
X-MICROSOFT-CDO-BUSYSTATUS:BUSY
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Stand-up
TRIGGER:-PT15M
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:weekly-1@example.com
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Europe/Amsterdam:20260309T090000
DTSTART;TZID=Europe/Amsterdam:20260309T090000
DTEND;TZID=Europe/Amsterdam:20260309T100000
SUMMARY:Stand-up
CLASS:PRIVATE
TRANSP:TRANSPARENT
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Stand-up
TRIGGER:-PT1H
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:weekly-1@example.com
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Europe/Amsterdam:20260316T090000
DTSTART;TZID=Europe/Amsterdam:20260316T090000
DTEND;TZID=Europe/Amsterdam:20260316T100000
SUMMARY:Stand-up
CLASS:PUBLIC
TRANSP:OPAQUE
END:VEVENT
BEGIN:VEVENT
UID:weekly-1@example.com
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Europe/Amsterdam:20260323T090000
DTSTART;TZID=Europe/Amsterdam:20260323T090000
DTEND;TZID=Europe/Amsterdam:20260323T100000
SUMMARY:Stand-up
CLASS:CONFIDENTIAL
TRANSP:OPAQUE
X-MICROSOFT-CDO-BUSYSTATUS:OOF
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Stand-up
TRIGGER:-PT15M
END:VALARM
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")

EXPECTED = (
    Override(SECOND, reminder_minutes=60, sensitivity=Sensitivity.PRIVATE, show_as=ShowAs.FREE),
    Override(THIRD, reminder_off=True),
    Override(FOURTH, sensitivity=Sensitivity.CONFIDENTIAL, show_as=ShowAs.OUT_OF_OFFICE),
)


def series(*overrides: Override) -> Activity:
    return Activity(
        id="weekly", kind=Kind.APPOINTMENT, subject="Stand-up", owner=OWNER, start=FIRST,
        end=FIRST + timedelta(hours=1), timezone="Europe/Amsterdam", reminder_minutes=15,
        sensitivity=Sensitivity.NORMAL, show_as=ShowAs.BUSY,
        recurrence=Recurrence("FREQ=WEEKLY;COUNT=6", overrides=overrides),
    )


def _occurrence(data: bytes, at: datetime) -> Any:
    for component in Calendar.from_ical(data).walk("VEVENT"):
        rid = component.get("RECURRENCE-ID")
        if rid is not None and rid.dt == at:
            return component
    raise AssertionError(f"no occurrence at {at}")


def _alarms(component: Any) -> list[timedelta]:
    return [alarm["TRIGGER"].dt for alarm in component.walk("VALARM")]


def test_calendar_occurrence_fields_reach_the_crm() -> None:
    read = from_ical(SERIES_ICS, CTX, "weekly.ics").activity
    assert read.reminder_minutes == 15
    assert read.sensitivity is Sensitivity.NORMAL and read.show_as is ShowAs.BUSY
    assert read.recurrence is not None
    assert read.recurrence.overrides == EXPECTED


def test_crm_occurrence_fields_reach_the_calendar() -> None:
    data = to_ical(series(*EXPECTED), CTX)
    second = _occurrence(data, SECOND)
    assert str(second["CLASS"]) == "PRIVATE" and str(second["TRANSP"]) == "TRANSPARENT"
    assert _alarms(second) == [timedelta(hours=-1)]
    third = _occurrence(data, THIRD)
    assert str(third["CLASS"]) == "PUBLIC" and _alarms(third) == []
    fourth = _occurrence(data, FOURTH)
    assert str(fourth["CLASS"]) == "CONFIDENTIAL" and str(fourth["X-MICROSOFT-CDO-BUSYSTATUS"]) == "OOF"
    assert _alarms(fourth) == [timedelta(minutes=-15)]  # the series' reminder, inherited
    back = from_ical(data, CTX, "weekly.ics").activity
    assert back.recurrence is not None and back.recurrence.overrides == EXPECTED
    assert fingerprint(back) == fingerprint(series(*EXPECTED).replace(id=back.id))


def test_crm_edit_of_one_occurrence_replaces_what_the_calendar_had() -> None:
    """The occurrence's CLASS and TRANSP are the CRM's now: the server's previous values do not win."""
    changed = (Override(SECOND, sensitivity=Sensitivity.CONFIDENTIAL), EXPECTED[1], EXPECTED[2])
    data = to_ical(series(*changed), CTX, base=SERIES_ICS.encode())
    second = _occurrence(data, SECOND)
    assert str(second["CLASS"]) == "CONFIDENTIAL" and str(second["TRANSP"]) == "OPAQUE"
    assert _alarms(second) == [timedelta(minutes=-15)]
    back = from_ical(data, CTX, "weekly.ics").activity
    assert back.recurrence is not None and back.recurrence.overrides == changed


def test_occurrence_of_a_free_private_series_without_its_own_class_or_transp_is_public_and_busy() -> None:
    """RFC 5545: an override component is whole; no CLASS is public, no TRANSP is opaque."""
    public = "CLASS:PUBLIC\r\nTRANSP:OPAQUE\r\nX-MICROSOFT-CDO-BUSYSTATUS:BUSY"
    text = SERIES_ICS.replace(public, "CLASS:PRIVATE\r\nTRANSP:TRANSPARENT")
    text = text.replace("CLASS:PUBLIC\r\nTRANSP:OPAQUE\r\nEND:VEVENT", "END:VEVENT")
    read = from_ical(text, CTX, "weekly.ics").activity
    assert read.sensitivity is Sensitivity.PRIVATE and read.show_as is ShowAs.FREE
    assert read.recurrence is not None
    third = next(o for o in read.recurrence.overrides if o.recurrence_id == THIRD)
    assert third.sensitivity is Sensitivity.NORMAL and third.show_as is ShowAs.BUSY


def test_occurrence_fields_through_the_exchange_format() -> None:
    activity = series(*EXPECTED)
    line = activity_to_json(activity)
    assert line["recurrence"]["overrides"][0]["sensitivity"] == "private"
    assert activity_from_json(line) == activity
    bad = {**line, "recurrence": {**line["recurrence"], "overrides": [
        {"recurrence_id": SECOND.isoformat(), "reminder_minutes": 10, "reminder_off": True, "show_as": "away"},
        {"recurrence_id": THIRD.isoformat(), "reminder_minutes": "10"},
    ]}}
    with pytest.raises(InvalidActivities) as caught:
        activity_from_json(bad)
    message = str(caught.value)
    assert 'recurrence.overrides[0].show_as": must be one of' in message
    assert 'recurrence.overrides[1].reminder_minutes": must be a whole number' in message
    both = series(Override(SECOND, reminder_minutes=10, reminder_off=True))
    assert [str(p) for p in activity_problems(both)] == [
        'field "recurrence.overrides[0].reminder_off": contradicts "reminder_minutes" (choose one)'
    ]


def test_fingerprint_sees_one_occurrences_privacy_and_keeps_old_links() -> None:
    plain = series(Override(SECOND, subject="moved"))
    private = series(Override(SECOND, subject="moved", sensitivity=Sensitivity.PRIVATE))
    assert fingerprint(plain) != fingerprint(private)
    assert fingerprint(private) != fingerprint(series(Override(SECOND, subject="moved", show_as=ShowAs.FREE)))
    assert fingerprint(series(Override(SECOND, reminder_off=True))) != fingerprint(series(Override(SECOND)))


# --- Exchange (EWS) and Microsoft Graph -----------------------------------------------------------------


def _exchange_series(activity: Activity, changed: dict[datetime, dict[str, Any]]) -> list[Any]:
    """The series' master as Exchange gives it back, with its exceptions: each the master's fields with
    ``changed`` set on it (the connector's UpdateItem of that occurrence, or a user's edit in Outlook)."""
    master = reparse(to_ews(activity, CTX))
    master.modified_occurrences = [
        Occurrence(start=at.astimezone(UTC), end=(at + timedelta(hours=1)).astimezone(UTC),
                   original_start=at.astimezone(UTC))
        for at in changed
    ]
    exceptions = []
    for at, fields in changed.items():
        occurrence = reparse(to_ews(activity.replace(recurrence=None, start=at, end=at + timedelta(hours=1)), CTX))
        occurrence.original_start = at.astimezone(UTC)
        for name, value in fields.items():
            setattr(occurrence, name, value)
        exceptions.append(occurrence)
    return [master, exceptions]


def _changes(activity: Activity, service: str) -> dict[datetime, OccurrenceChange]:
    return {c.original_start: c for c in occurrence_changes(activity, service=service)}  # type: ignore[misc]


def test_exchange_occurrence_fields_round_trip() -> None:
    activity = series(*EXPECTED)
    changes = _changes(activity, "ews")
    written = {at: occurrence_fields_out(change) for at, change in changes.items()}
    assert written[SECOND] == {"sensitivity": "Private", "reminder_is_set": True,
                               "reminder_minutes_before_start": 60, "legacy_free_busy_status": "Free"}
    assert written[THIRD]["reminder_is_set"] is False
    assert written[FOURTH]["legacy_free_busy_status"] == "OOF"
    master, exceptions = _exchange_series(activity, written)
    for occurrence, fields in zip(exceptions, written.values(), strict=True):
        assert_valid(update_payload(occurrence, list(fields)))  # an occurrence's UpdateItem, by the schema
    back = from_ews(master, CTX, occurrences=exceptions).activity
    assert back.recurrence is not None and back.recurrence.overrides == EXPECTED


def test_exchange_user_edit_of_one_occurrence_reaches_the_crm() -> None:
    edit = {"sensitivity": "Personal", "legacy_free_busy_status": "Tentative", "reminder_minutes_before_start": 5}
    master, exceptions = _exchange_series(series(), {SECOND: edit})
    back = from_ews(master, CTX, occurrences=exceptions).activity
    assert back.recurrence is not None
    assert back.recurrence.overrides == (
        Override(SECOND, reminder_minutes=5, sensitivity=Sensitivity.PRIVATE, show_as=ShowAs.TENTATIVE),)


def test_an_occurrence_that_loses_its_own_values_is_given_the_series_ones_back() -> None:
    """Only what an occurrence has of its own is written to it (the rest keeps following the series), and
    what it had is undone: the series' value written over it."""
    had = series(*EXPECTED).recurrence
    now = series(Override(SECOND, subject="Stand-up"), Override(THIRD), Override(FOURTH))
    changes = {c.original_start: c for c in occurrence_changes(now, had, service="ews")}
    assert (changes[SECOND].sensitivity, changes[SECOND].show_as, changes[SECOND].reminder) == (
        Sensitivity.NORMAL, ShowAs.BUSY, (15,))
    assert occurrence_fields_out(changes[THIRD]) == {"reminder_is_set": True, "reminder_minutes_before_start": 15}
    assert occurrence_patch(changes[FOURTH], CTX.options) == {"sensitivity": "normal", "showAs": "busy"}
    untouched = occurrence_changes(now, None, service="graph")
    assert [occurrence_patch(c, CTX.options) for c in untouched] == [{}, {}, {}]


def test_exchange_and_graph_refuse_an_occurrence_reminder_after_its_start() -> None:
    late = series(Override(SECOND, reminder_minutes=-10))
    for write in (lambda: to_ews(late, CTX), lambda: event_to_graph(late, CTX, invitations=False)):
        with pytest.raises(ItemError) as caught:
            write()
        assert "after an appointment starts (the occurrence of 2026-03-09 09:00:00+01:00)" in str(caught.value)


def test_graph_occurrence_fields_round_trip() -> None:
    activity = series(*EXPECTED)
    body = event_to_graph(activity, CTX, invitations=False)
    read = as_read(body)
    patches = {at: occurrence_patch(change, CTX.options) for at, change in _changes(activity, "graph").items()}
    assert patches[SECOND] == {"sensitivity": "private", "isReminderOn": True, "reminderMinutesBeforeStart": 60,
                               "showAs": "free"}
    assert patches[THIRD] == {"isReminderOn": False}  # the rest follows the series
    exceptions = []
    for at, patch in patches.items():
        row = {k: v for k, v in read.items() if k not in ("recurrence", "id", "type")}
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        row.update(id=f"AAMkExc{stamp}", type="exception", originalStart=stamp, start=gp.dtz(at, "UTC"),
                   end=gp.dtz(at + timedelta(hours=1), "UTC"))
        row.update(patch)
        exceptions.append(row)
    read["exceptionOccurrences"] = exceptions
    back = event_from_graph(read, CTX).activity
    assert back.recurrence is not None and back.recurrence.overrides == EXPECTED
