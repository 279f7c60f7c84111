"""A pulled item reads the same whether syncd's parser or icalendar's own reads it.

syncd.mapping.ical_parse adds an ordinary property to its component in one step rather than through
icalendar's handle_property, parse_and_add_property and Component.add, and syncd.mapping.ical_lines
builds a plain line's parameters and unescapes its value without icalendar's general passes. Both must
give exactly what icalendar gives: the same components (names, value types, values, parameters, errors)
and the same refusal, on the corpus and on generated calendars full of odd properties; and
:func:`syncd.mapping.ical.from_ical` reads the same activity (or refuses the item with the same reason)
from either parse.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Component
from ics_resources import CORPUS, resources

from syncd.errors import ItemError
from syncd.mapping import ical
from syncd.mapping.context import MappingContext
from syncd.mapping.ical_parse import parse_calendar
from syncd.model import Activity, CrmUser

DATA = Path(__file__).parent.parent / "data" / "ics"
CTX = MappingContext(owner=CrmUser("owner@example.com", "Owner", "Europe/Amsterdam"))


def _structure(component: Component) -> list[Any]:
    """Everything a parse made: each property's name, value type, value and parameters, in order."""
    props = []
    for name, value in component.items():
        values = value if isinstance(value, list) else [value]
        props.append([name, [(type(v), v.to_ical(), type(getattr(v, "params", None)),
                              list(getattr(v, "params", {}).items())) for v in values]])
    return [type(component), component.name, props, component.errors, [_structure(c) for c in component.subcomponents]]


def _parsed(parse: Any, text: str) -> Any:
    try:
        return _structure(parse(text))
    except Exception as exc:  # noqa: BLE001 - the same refusal is part of reading the same
        return "refused", type(exc), str(exc)


@contextmanager
def _icalendar_parse() -> Iterator[None]:
    """from_ical with the calendar parsed by icalendar alone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ical, "parse_calendar", Calendar.from_ical)
        yield


def _reading(data: bytes | str, ref: str) -> Any:
    """What from_ical gives: the item's fields, the activity, and what it did not carry (each predicate
    asked of the activity itself), or the refusal."""
    try:
        parsed = ical.from_ical(data, CTX, ref)
    except ItemError as exc:
        return "refused", str(exc)
    u = parsed.uncarried
    shown = {name: agrees(parsed.activity) for name, agrees in u.shown.items()}
    return (parsed.uid, parsed.crm_id, parsed.activity, parsed.modified_at, parsed.categories,
            u.fields, shown, u.kinds, u.hidden_people is None, u.type_category is None)


def _both_readings(data: bytes | str, ref: str) -> tuple[Any, Any]:
    ours = _reading(data, ref)
    with _icalendar_parse():
        theirs = _reading(data, ref)
    return ours, theirs


@pytest.mark.filterwarnings("ignore")
def test_every_corpus_item_reads_the_same_as_through_icalendars_own_parse() -> None:
    read = refused = 0
    for path in sorted(CORPUS.rglob("*.ics")):
        for name, data in resources(path):
            ours, theirs = _both_readings(data, name)
            assert ours == theirs, name
            read += 1
            refused += ours[0] == "refused"
    assert read > 300 and 0 < refused < read / 2


@pytest.mark.filterwarnings("ignore")
def test_every_sample_file_reads_the_same_as_through_icalendars_own_parse() -> None:
    files = sorted(DATA.glob("*.ics"))
    for path in files:
        ours, theirs = _both_readings(path.read_bytes(), path.name)
        assert ours == theirs, path.name
    assert len(files) > 5


_VTIMEZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Custom Zone\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n"
    "DTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\n"
    "END:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)
#: Names: syncd's, the time properties icalendar reads with a TZID, those it reads its own way
#: (CATEGORIES, FREEBUSY, RDATE), value types of every kind, unknown ones, a name in lower case or
#: beyond ASCII, and a line that is no property.
_NAMES = st.sampled_from([
    "DTSTART", "DTEND", "DUE", "DURATION", "RECURRENCE-ID", "EXDATE", "RDATE", "RRULE", "EXRULE", "SUMMARY",
    "DESCRIPTION", "LOCATION", "CATEGORIES", "FREEBUSY", "ATTENDEE", "ORGANIZER", "STATUS", "PRIORITY",
    "SEQUENCE", "CLASS", "TRANSP", "GEO", "URL", "ATTACH", "CREATED", "LAST-MODIFIED", "COMPLETED",
    "RELATED-TO", "X-SYNCD-ID", "X-SYNCD-STATUS", "X-SYNCD-PARTICIPANT", "X-SYNCD-EXTRA", "X-FOO",
    "X-MICROSOFT-CDO-BUSYSTATUS", "TZOFFSETTO", "REQUEST-STATUS", "dtstart", "Summary", "x-foo", "ÄX",
])
_PARAMS = st.sampled_from([
    "", "", "", ";TZID=Europe/Amsterdam", ";TZID=Custom Zone", ";TZID=\"Custom Zone\"", ";TZID=Nowhere",
    ";VALUE=DATE", ";value=date", ";VALUE=DATE-TIME", ";VALUE=PERIOD", ";VALUE=TEXT", ";VALUE=UNKNOWN",
    ";VALUE=BINARY;ENCODING=BASE64", ";VALUE=FANCY", ";VALUE=DATE,DATE-TIME", ";VALUE=URI",
    ";CN=Jo;PARTSTAT=ACCEPTED;X-SYNCD-KIND=contact", ';CN="Doe, Jo";ROLE=OPT-PARTICIPANT', ";RELTYPE=PARENT",
    ";RANGE=THISANDFUTURE", ";RELATED=END", ";VALUE=TEXT;TZID=Europe/Amsterdam", ";VALUE=UNKNOWN;TZID=Nowhere",
    ";X-A=1;x-a=2", ";CN=Jo ;ROLE= CHAIR", ";CN=a\\,b",
])
_VALUES = st.sampled_from([
    "20260601T100000Z", "20260601T100000", "20260601", "20260601T100000Z,20260608T100000Z",
    "20260601T100000Z/PT1H", "20260601T100000Z/20260601T110000Z", "PT1H", "-PT15M", "P1D", "FREQ=DAILY;COUNT=3",
    "FREQ=WEEKLY;BYDAY=MO,WE", "", "x", "a\\, b\\; c\\nd\\\\", "C:\\dir a:b;c,d", "mailto:a@example.com",
    "urn:uuid:1234", "1.5;2.5", "5", "-3", "TRUE", "CONFIRMED", "TRANSPARENT", "Work,Home\\,Office",
    '{"at": 0\\, "kind": "contact"\\, "name": "Ann"}', "https://example.com/a?b=c", "aGVsbG8=", "+0100",
    "2.0;Success", "not a date", "2026-06-01", "99999999T999999",
])


@st.composite
def _calendars(draw: st.DrawFn) -> str:
    lines = [f"{draw(_NAMES)}{draw(_PARAMS)}:{draw(_VALUES)}" for _ in range(draw(st.integers(0, 8)))]
    alarm = draw(st.sampled_from(["", "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n",
                                  "BEGIN:VALARM\r\nTRIGGER;RELATED=END:PT5M\r\nTRIGGER:x\r\nEND:VALARM\r\n"]))
    kind = draw(st.sampled_from(["VEVENT", "VEVENT", "VTODO"]))
    zone = _VTIMEZONE if draw(st.booleans()) else ""
    after = draw(st.sampled_from(["", "", "X-COMMENT:end\r\n", "SUMMARY:outside\r\n"]))
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{zone}BEGIN:{kind}\r\nUID:g@example.com\r\n"
        f"DTSTAMP:20260101T000000Z\r\n" + "".join(f"{line}\r\n" for line in lines)
        + f"{alarm}END:{kind}\r\nEND:VCALENDAR\r\n{after}"
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_calendars())
@pytest.mark.filterwarnings("ignore")
def test_a_calendar_of_odd_properties_parses_and_reads_as_with_icalendar(text: str) -> None:
    assert _parsed(parse_calendar, text) == _parsed(Calendar.from_ical, text)
    ours, theirs = _both_readings(text, "generated.ics")
    assert ours == theirs


def test_the_readings_compared_are_those_of_a_real_item() -> None:
    """The comparison above sees the activity: a phone's event reads as one, with its times."""
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:p@example.com\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART;TZID=Europe/Amsterdam:20260601T100000\r\nDTEND;TZID=Europe/Amsterdam:20260601T110000\r\n"
        "SUMMARY:Review\\, final\r\nATTENDEE;CN=\"Doe, Jo\";PARTSTAT=ACCEPTED:mailto:jo@example.com\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    ours, theirs = _both_readings(text, "p.ics")
    assert ours == theirs
    activity = ours[2]
    assert isinstance(activity, Activity) and activity.subject == "Review, final"
    assert isinstance(activity.start, datetime) and activity.start.hour == 10
    assert activity.timezone == "Europe/Amsterdam"
    assert [(p.email, p.name) for p in activity.participants] == [("jo@example.com", "Doe, Jo")]
