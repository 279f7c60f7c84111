"""An ATTENDEE given as a bare e-mail (libical's rooms write ``CUTYPE=ROOM:conf_Big@example.com``, no
``mailto:``) is that e-mail: the room is kept, invited by its address, not dropped."""

from __future__ import annotations

from icalendar import Calendar

from syncd.mapping.context import MappingContext
from syncd.mapping.ical import from_ical, to_ical
from syncd.model import CrmUser, ParticipantKind

CTX = MappingContext(owner=CrmUser("owner@example.com", "Owner", "Europe/Amsterdam"))


def event(attendees: str) -> bytes:
    text = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VEVENT\nUID:review\nDTSTAMP:20260101T000000Z\n"
        "DTSTART:20260701T180000Z\nDTEND:20260701T190000Z\nSUMMARY:Review\n"
        f"ORGANIZER:mailto:owner@example.com\n{attendees}\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n").encode()


def test_a_room_known_by_a_bare_email_is_kept_and_written_back() -> None:
    data = event("ATTENDEE;RSVP=FALSE;CUTYPE=ROOM:conf_Big@example.com\nATTENDEE;CN=B:Mailto:B@example.com")
    activity = from_ical(data, CTX, "review").activity
    room = next(p for p in activity.participants if p.kind is ParticipantKind.RESOURCE)
    assert room.email == "conf_Big@example.com"
    written = Calendar.from_ical(to_ical(activity, CTX)).walk("VEVENT")[0]
    shown = {str(a).casefold(): a.params.get("CUTYPE") for a in written["ATTENDEE"]}
    assert shown == {"mailto:conf_big@example.com": "ROOM", "mailto:b@example.com": None}


def test_a_uri_that_is_no_email_stays_a_named_participant() -> None:
    activity = from_ical(event("ATTENDEE;CUTYPE=ROOM:urn:uuid:0e1b-room"), CTX, "review").activity
    [room] = activity.participants
    assert (room.email, room.name, room.kind) == (None, "urn:uuid:0e1b-room", ParticipantKind.RESOURCE)
