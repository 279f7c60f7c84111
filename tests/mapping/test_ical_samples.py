"""Calendar exports of real clients (tests/data/ics, see its README) are read, re-written and read again."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from ics_resources import split

from syncd.mapping.context import MappingContext
from syncd.mapping.ical import ParsedItem, from_ical, to_ical
from syncd.model import CrmUser, Kind

DATA = Path(__file__).parent.parent / "data" / "ics"
CTX = MappingContext(owner=CrmUser("owner@example.com", "Owner", "Europe/Amsterdam"))


def resources(name: str) -> list[bytes]:
    """An export as CalDAV stores it: one object resource per UID, each with the VTIMEZONEs."""
    return list(split(Calendar.from_ical((DATA / name).read_bytes())))


def read_all(name: str) -> list[ParsedItem]:
    return [from_ical(data, CTX, f"{name}#{i}") for i, data in enumerate(resources(name))]


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.ics")))
def test_sample_survives_a_round_trip(name: str) -> None:
    """Every item of every sample reads, writes and reads back to the same activity, keeping foreign props."""
    for i, data in enumerate(resources(name)):
        parsed = from_ical(data, CTX, f"{name}#{i}")
        again = to_ical(parsed.activity, CTX, data)
        assert from_ical(again, CTX, "again").activity == parsed.activity
        before = {k for c in Calendar.from_ical(data).walk() if c.name in ("VEVENT", "VTODO") for k in c}
        after = {k for c in Calendar.from_ical(again).walk() if c.name in ("VEVENT", "VTODO") for k in c}
        kept = {k for k in before if k.startswith("X-") and not k.startswith("X-SYNCD")}
        assert kept <= after, f"{name}: other clients' properties lost"


def test_outlook_windows_zone_and_all_day_series() -> None:
    """Outlook's 'GMT Standard Time' is London; the all-day EXDATE written in a zone becomes a date."""
    items = {p.uid: p.activity for p in read_all("outlook_exchange2010.ics")}
    timed = next(a for a in items.values() if a.subject == "outlook event with alarm")
    assert timed.timezone == "Europe/London"
    assert timed.start == datetime(2024, 10, 4, 18, 30, tzinfo=ZoneInfo("Europe/London"))
    series = items["111"]
    assert series.all_day and series.start == date(2024, 7, 1) and series.end == date(2024, 7, 8)
    assert series.recurrence is not None and series.recurrence.exdates == (date(2024, 7, 15),)


def test_google_moved_occurrences() -> None:
    """Google's moved occurrences come back as overrides with a new start."""
    series = [p.activity for p in read_all("google_moved_event.ics") if p.activity.recurrence]
    assert series and all(a.recurrence.overrides for a in series)
    assert any(o.start is not None for a in series for o in a.recurrence.overrides)


def test_google_weekly_series_keeps_wall_clock_across_dst() -> None:
    """A weekly Google series in a zone keeps its local hour after the DST switch."""
    from syncd.mapping.occurrences import occurrences

    activity = read_all("google_dst_weekly.ics")[0].activity
    assert activity.timezone is not None
    tz = ZoneInfo(activity.timezone)
    found = occurrences(activity, activity.start, activity.start.replace(year=activity.start.year + 1))
    hours = {start.astimezone(tz).time() for start, _ in found}
    offsets = {start.astimezone(tz).utcoffset() for start, _ in found}
    assert len(hours) == 1 and len(offsets) == 2


def test_rfc5545_examples() -> None:
    """The RFC's own examples: conference, all-day yearly series, to-dos with DUE and COMPLETED."""
    items = {p.uid: p.activity for p in read_all("rfc5545_examples.ics")}
    assert items["uid1@example.com"].description == (
        "Networld+Interop Conference and Exhibit\nAtlanta World Congress Center\nAtlanta, Georgia"
    )
    anniversary = items["19970901T130000Z-123403@example.com"]
    assert anniversary.all_day and anniversary.recurrence.rrule == "FREQ=YEARLY"
    jazz = items["20070423T123432Z-541111@example.com"]
    assert (jazz.start, jazz.end) == (date(2007, 6, 28), date(2007, 7, 9))
    tax = items["20070313T123432Z-456553@example.com"]
    assert tax.kind is Kind.TASK and tax.due == date(2007, 5, 1) and tax.status == "open"
    draft = items["20070514T103211Z-123404@example.com"]
    assert draft.completed_at is not None and draft.priority == "high"
    review = items["uid3@example.com"]
    assert review.timezone == "America/New_York" and review.participants[0].email == "employee-A@example.com"
    taxes = items["uid4@example.com"]
    assert taxes.due == datetime(1998, 4, 15, tzinfo=ZoneInfo("Europe/Amsterdam"))  # floating: owner's zone
    assert taxes.reminder_minutes is not None


def _valarms(data: bytes) -> list:
    return [a for c in Calendar.from_ical(data).walk() if c.name == "VEVENT" for a in c.walk("VALARM")]


def test_apple_alert_none_is_no_reminder_and_is_kept() -> None:
    """Apple's "Alert: None" placeholder (TRIGGER at 1976-04-01) is no reminder, and stays when syncd writes."""
    from dataclasses import replace

    data = resources("apple_none_alarm_moscow.ics")[0]
    activity = from_ical(data, CTX, "apple").activity
    assert activity.reminder_minutes is None
    assert activity.start == datetime(2018, 4, 20, 12, tzinfo=ZoneInfo("Europe/Moscow"))
    for reminder in (None, 30):
        again = to_ical(replace(activity, reminder_minutes=reminder), CTX, data)
        assert from_ical(again, CTX, "again").activity.reminder_minutes == reminder
        uids = [str(a.get("X-WR-ALARMUID")) for a in _valarms(again)]
        assert "06071073-A112-40CA-83AA-C05F54736B36" in uids
        assert b"X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC" in again


def test_apple_all_day_default_alert_is_the_reminder_and_is_kept() -> None:
    """Apple's default alert of an all-day event (15 h before: 09:00 the day before) is the reminder, kept as is."""
    data = resources("apple_allday_default_alarm.ics")[0]
    activity = from_ical(data, CTX, "apple").activity
    assert activity.all_day and (activity.start, activity.end) == (date(2012, 7, 16), date(2012, 7, 17))
    assert activity.reminder_minutes == 15 * 60
    alarms = _valarms(to_ical(activity, CTX, data))
    assert len(alarms) == 1
    assert str(alarms[0]["X-WR-ALARMUID"]) == "A99EDA6A-35EB-4446-B8BC-CDA3C60C627D"
    assert str(alarms[0]["ACTION"]) == "AUDIO" and "X-APPLE-DEFAULT-ALARM" in alarms[0]


def test_apple_series_with_exdates_and_a_changed_occurrence() -> None:
    """Mac OS X 10.11: 'last weekday every 2 months' with EXDATEs and one occurrence made free (TRANSP)."""
    data = resources("apple_recurring_override.ics")[0]
    activity = from_ical(data, CTX, "apple").activity
    la = ZoneInfo("America/Los_Angeles")
    assert activity.timezone == "America/Los_Angeles" and activity.start == datetime(2015, 3, 24, 13, tzinfo=la)
    assert activity.recurrence.rrule == "FREQ=MONTHLY;INTERVAL=2;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"
    assert datetime(2015, 5, 29, 13, tzinfo=la) in activity.recurrence.exdates
    assert [o.recurrence_id for o in activity.recurrence.overrides] == [datetime(2015, 7, 31, 13, tzinfo=la)]
    written = [c for c in Calendar.from_ical(to_ical(activity, CTX, data)).walk() if c.name == "VEVENT"]
    assert [c["RECURRENCE-ID"].dt for c in written if "RECURRENCE-ID" in c] == [datetime(2015, 7, 31, 13, tzinfo=la)]


def test_apple_occurrence_made_free_stays_free() -> None:
    """The one occurrence Apple marked free (TRANSP:TRANSPARENT, series OPAQUE) is still free after syncd writes."""
    data = resources("apple_recurring_override.ics")[0]
    written = Calendar.from_ical(to_ical(from_ical(data, CTX, "apple").activity, CTX, data))
    changed = [c for c in written.walk("VEVENT") if "RECURRENCE-ID" in c]
    assert str(changed[0]["TRANSP"]) == "TRANSPARENT"
