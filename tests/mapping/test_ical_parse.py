"""A pull reads each VTIMEZONE text once (syncd.mapping.ical_parse): items still read exactly as
icalendar reads them, and each item's times follow its own definition."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from icalendar import Calendar

from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ical import from_ical
from syncd.mapping.ical_parse import parse_calendar
from syncd.model import CrmUser

CORPUS = Path(__file__).parent.parent / "data" / "ics" / "corpus"
CTX = MappingContext(owner=CrmUser("owner@example.com", "Owner", "Europe/Amsterdam"))


def _outcome(parse: object, text: str) -> tuple[str, object]:
    try:
        return "parsed", parse(text).to_ical()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the same refusal is part of reading the same
        return "refused", (type(exc), str(exc))


@pytest.mark.filterwarnings("ignore")
def test_every_corpus_file_reads_as_icalendar_reads_it_also_the_second_time() -> None:
    compared = 0
    for path in sorted(CORPUS.rglob("*.ics")):
        data = path.read_bytes()
        if b"BEGIN:VTIMEZONE" not in data.upper():
            continue
        text = data.decode("utf-8", errors="replace")
        expected = _outcome(Calendar.from_ical, text)
        assert _outcome(parse_calendar, text) == expected, path.name
        assert _outcome(parse_calendar, text) == expected, path.name  # its VTIMEZONEs now known
        compared += 1
    assert compared > 50


def _outlook_item(uid: str, standard: str, daylight: str) -> str:
    """An Outlook event in its own "Customized Time Zone", whose rules only the VTIMEZONE gives."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r\n"
        "BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\n"
        f"BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:{daylight}\r\nTZOFFSETTO:{standard}\r\n"
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n"
        f"BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:{standard}\r\nTZOFFSETTO:{daylight}\r\n"
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Review\r\n"
        "DTSTART;TZID=Customized Time Zone:20260715T090000\r\n"
        "DTEND;TZID=Customized Time Zone:20260715T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def test_items_naming_one_tzid_with_different_rules_each_keep_their_own_time() -> None:
    amsterdam = from_ical(_outlook_item("a@x", "+0100", "+0200"), CTX, "a.ics").activity
    london = from_ical(_outlook_item("l@x", "+0000", "+0100"), CTX, "l.ics").activity
    again = from_ical(_outlook_item("a2@x", "+0100", "+0200"), CTX, "a2.ics").activity
    assert isinstance(amsterdam.start, datetime) and isinstance(london.start, datetime)
    assert amsterdam.start.astimezone(UTC) == datetime(2026, 7, 15, 7, tzinfo=UTC)
    assert london.start.astimezone(UTC) == datetime(2026, 7, 15, 8, tzinfo=UTC)
    assert again.start == amsterdam.start and again.timezone == amsterdam.timezone


def test_a_broken_vtimezone_is_refused_every_time_it_is_read() -> None:
    broken = _outlook_item("b@x", "+0100", "+0200").replace("TZOFFSETTO:+0200", "TZOFFSETTO:two hours", 1)
    cut = _outlook_item("c@x", "+0100", "+0200").split("END:DAYLIGHT")[0]
    for item, reason in ((broken, "Expected UTC offset"), (cut, "Found no components")) * 2:
        with pytest.raises(ItemError, match=reason):
            from_ical(item, CTX, "x.ics")
