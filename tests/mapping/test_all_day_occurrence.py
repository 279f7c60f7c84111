"""One occurrence of a timed series made all-day (Thunderbird lets a user do it) cannot be held by the
CRM, which keeps one value type per series: the item is refused with that reason, not read as a timed
occurrence at the series' time of day."""

from __future__ import annotations

import pytest

from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ical import from_ical
from syncd.model import CrmUser

CTX = MappingContext(owner=CrmUser("owner@example.com", "Owner", "Europe/Amsterdam"))


def series(override: str) -> bytes:
    text = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n"
        "BEGIN:VEVENT\nUID:daily\nDTSTAMP:20260101T000000Z\nSUMMARY:Daily\n"
        "DTSTART;TZID=Europe/Amsterdam:20260307T090000\nDTEND;TZID=Europe/Amsterdam:20260307T100000\n"
        "RRULE:FREQ=DAILY;COUNT=4\nEND:VEVENT\n"
        "BEGIN:VEVENT\nUID:daily\nDTSTAMP:20260101T000000Z\nSUMMARY:Daily\n"
        f"RECURRENCE-ID;TZID=Europe/Amsterdam:20260309T090000\n{override}\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n").encode()


def test_an_occurrence_made_all_day_is_refused_with_the_reason() -> None:
    with pytest.raises(ItemError, match=r"made all-day.*one value type per series"):
        from_ical(series("DTSTART;VALUE=DATE:20260309\nDTEND;VALUE=DATE:20260310"), CTX, "daily")


def test_an_occurrence_moved_to_another_time_is_read() -> None:
    activity = from_ical(
        series("DTSTART;TZID=Europe/Amsterdam:20260309T140000\nDTEND;TZID=Europe/Amsterdam:20260309T150000"),
        CTX, "daily",
    ).activity
    assert activity.recurrence is not None
    [override] = activity.recurrence.overrides
    assert override.start is not None and (override.start.hour, override.start.minute) == (14, 0)
