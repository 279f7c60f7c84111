"""Names the CRM holds and syncd writes into iCalendar parameter values (an attendee's and the
organizer's CN, an attachment's FILENAME) come back exactly and never corrupt the address or link.

icalendar reads a backslash in a parameter value as an escape, and wrote a trailing one bare
(``ATTENDEE;CN=a\\:mailto:a@b.c`` came back as CN ``a:mailto`` and address ``a@b.c``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import recurring_ical_events
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event, vCalAddress, vUri

from syncd.mapping.context import MappingContext
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.ical_params import set_text_param, text_param
from syncd.model import Activity, Attachment, CrmUser, Directory, Kind, Participant, ParticipantKind

OWNER = "anna@example.com"
CTX = MappingContext(owner=CrmUser(OWNER, "Anna", "Europe/Amsterdam"), directory=Directory(users={OWNER: "Anna"}))
START = datetime(2026, 12, 3, 9, tzinfo=UTC)
GUEST = "jan@klant.nl"
BOSS = "board@partner.example"
URL = "https://files.example/offer%2017.pdf?a=1;b=2"

NAMES = [
    "\\ ", "\\", "a\\", "\\,", "a\\;b", "x\\:y", " \\", "a\\\\", "c:\\dir\\", "C:\\a b\\",
    "\\\\server\\share\\offer.pdf", "a;b,c\\d:e", "mailto:x@y.z", "Doe, John", '"Jan" de Vries', "O'Brien",
    "^", "^n", "a^'b", "^^", "  padded  ", "\ttab", "ideographic space\u3000", "%5C%", "x" * 70 + "\\,\\\\",
    "line\nbreak", "line\r\nbreak\rold mac", "Jan\x07\x7f de Vries", "\x07",
]
#: What RFC 5545 cannot show in a parameter value (controls; a CR, RFC 6868 has only "new line").
UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def _activity(name: str) -> Activity:
    return Activity(
        "A-1", Kind.APPOINTMENT, "Offerte", OWNER, start=START, end=START.replace(hour=10),
        participants=(Participant(ParticipantKind.EXTERNAL, GUEST, name),),
        organizer=Participant(ParticipantKind.EXTERNAL, BOSS, name),
        attachments=(Attachment(URL, name),),
    )


def _rfc_reading(data: bytes, prop: str, param: str) -> str:
    """The parameter as a client that follows RFC 5545 and RFC 6868 reads it: the quoted text as is."""
    line = next(x for x in data.replace(b"\r\n ", b"").decode("utf-8").split("\r\n") if x.startswith(prop + ";"))
    match = re.search(f';{param}=(?:"([^"]*)"|([^";:]*))', line)
    assert match is not None, line
    value = match.group(1) if match.group(1) is not None else match.group(2)
    return re.sub(r"\^\^|\^n|\^'", lambda m: {"^^": "^", "^n": "\n", "^'": '"'}[m.group()], value)


@pytest.mark.parametrize("name", NAMES)
def test_a_name_comes_back_exactly_and_the_address_stays(name: str) -> None:
    data = to_ical(_activity(name), CTX)
    back = from_ical(data, CTX, "a.ics").activity
    assert [(p.email, p.name) for p in back.participants] == [(GUEST, name)]
    assert back.organizer is not None
    assert (back.organizer.email, back.organizer.name) == (BOSS, name)
    assert [(a.url, a.name) for a in back.attachments] == [(URL, name)]

    # the next pass, written over the item it wrote, changes nothing either
    again = from_ical(to_ical(back, CTX, base=data), CTX, "a.ics").activity
    assert (again.participants, again.organizer, again.attachments) == (
        back.participants, back.organizer, back.attachments,
    )

    # other clients: icalendar and recurring-ical-events see the right address, link and event
    (event,) = recurring_ical_events.of(Calendar.from_ical(data)).at(START.date())
    assert str(event["ATTENDEE"]) == f"mailto:{GUEST}"
    assert str(event["ORGANIZER"]) == f"mailto:{BOSS}"
    assert str(event["ATTACH"]) == URL
    # and a client that follows the RFCs shows the CRM's name, as far as a parameter can hold it
    if not UNSHOWABLE.search(name):
        for prop, param in (("ATTENDEE", "CN"), ("ORGANIZER", "CN"), ("ATTACH", "FILENAME")):
            assert _rfc_reading(data, prop, param) == name


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ('ATTENDEE;CN="Doe\\, John":mailto:john@example.com', "Doe, John"),  # escaped as TEXT, quoted
        ("ATTENDEE;CN=Doe\\, John:mailto:john@example.com", "Doe, John"),
        ("ATTENDEE;CN=Doe, John:mailto:john@example.com", "Doe, John"),  # unquoted: two values to icalendar
        ('ATTENDEE;CN="C:\\rooms\\":mailto:john@example.com', "C:\\rooms\\"),
        ('ATTENDEE;CN="Jan";X-SYNCD-CN="%5C,":mailto:john@example.com', "Jan"),  # renamed in a client
    ],
)
def test_names_other_clients_wrote_read_as_they_meant(line: str, name: str) -> None:
    raw = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\n"
        "DTSTAMP:20261201T000000Z\r\nDTSTART:20261203T090000Z\r\nSUMMARY:s\r\n"
        f"{line}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    (p,) = from_ical(raw, CTX, "x.ics").activity.participants
    assert (p.email, p.name) == ("john@example.com", name)


def test_a_room_known_by_its_uri_keeps_its_name() -> None:
    raw = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\n"
        b"DTSTAMP:20261201T000000Z\r\nDTSTART:20261203T090000Z\r\nSUMMARY:s\r\n"
        b'ATTENDEE;CUTYPE=ROOM;CN="Zaal \\\\1\\":urn:uuid:room-1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n'
    )
    first = from_ical(raw, CTX, "x.ics").activity
    written = to_ical(first, CTX, base=raw)
    again = from_ical(written, CTX, "x.ics").activity
    assert [p.name for p in again.participants] == [p.name for p in first.participants] == ["Zaal \\1\\"]
    assert str(Calendar.from_ical(written).walk("VEVENT")[0]["ATTENDEE"]) == "urn:uuid:room-1"


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1), key=st.sampled_from(["CN", "FILENAME"]))
def test_any_text_survives_icalendar_exactly(text: str, key: str) -> None:
    value = vCalAddress("mailto:a@b.c") if key == "CN" else vUri("https://x.example/y")
    set_text_param(value, key, text)
    event = Event()
    event.add("ATTENDEE" if key == "CN" else "ATTACH", value)
    back = Event.from_ical(event.to_ical())["ATTENDEE" if key == "CN" else "ATTACH"]
    assert (str(back), text_param(back, key)) == (str(value), text)
