"""Scheduling (RFC 6638): syncd's CalDAV writes never make a server mail the CRM's contacts, unless the
binding sets ``send_invitations = true``.

Against Cyrus IMAP's CalDAV server, which schedules implicitly: the calendar belongs to ``anna``, whose
address (anna@example.com) is the activity's owner, so every PUT of an item with attendees is an
organizer's write the server would turn into iMIP mail. The server's sendmail is captured on this
machine (tests/caldav_servers.py), so each test sees exactly what it sent.
"""

from __future__ import annotations

import email.message
from collections.abc import Iterator
from pathlib import Path

import icalendar
import pytest
from caldav_servers import CalDavServer, ServerWorld, caldav_server_pool, cyrus, ical_of, server_world  # noqa: F401
from world import BOB, OWNER, master, meeting, soon, uid

from syncd.mapping.context import MappingContext
from syncd.mapping.fingerprint import fingerprint
from syncd.mapping.ical import from_ical, to_ical
from syncd.model import CrmUser, Participant, ParticipantKind, Response

JAN = Participant(ParticipantKind.CONTACT, "jan@client.example", "Jan de Vries")
EVA = Participant(ParticipantKind.CONTACT, "eva@client.example", "Eva Kowalska", response=Response.ACCEPTED)


def _people(data: bytes) -> list[icalendar.vCalAddress]:
    event = master(icalendar.Calendar.from_ical(data))
    attendees = event.get("ATTENDEE")
    return [event["ORGANIZER"], *(attendees if isinstance(attendees, list) else [attendees])]


# --- the mapping ------------------------------------------------------------------------------------

OWNER_CTX = MappingContext(owner=CrmUser(OWNER, "Anna", "Europe/Amsterdam"))
SENDING_CTX = MappingContext(owner=OWNER_CTX.owner, send_invitations=True)


def test_by_default_the_client_schedules_and_no_reply_is_asked_for() -> None:
    people = _people(to_ical(meeting("m1", participants=(JAN, EVA)), OWNER_CTX))
    assert [str(p.params.get("SCHEDULE-AGENT")) for p in people] == ["CLIENT"] * 3
    assert not any("RSVP" in p.params for p in people)


def test_with_send_invitations_the_server_schedules_and_a_reply_is_asked_for() -> None:
    people = _people(to_ical(meeting("m1", participants=(JAN, EVA)), SENDING_CTX))
    assert not any("SCHEDULE-AGENT" in p.params for p in people)
    _organizer, jan, eva = people
    assert str(jan.params["RSVP"]) == "TRUE" and "RSVP" not in eva.params  # Eva has answered


def test_the_servers_scheduling_parameters_are_not_a_change() -> None:
    """What a scheduling server adds to the people of an item reads as the same activity."""
    activity = meeting("m1", participants=(JAN, EVA))
    data = to_ical(activity, OWNER_CTX)
    cal = icalendar.Calendar.from_ical(data)
    for person in [*master(cal)["ATTENDEE"], master(cal)["ORGANIZER"]]:
        person.params["SCHEDULE-STATUS"] = "1.2"
        person.params["RSVP"] = "TRUE"
    before = from_ical(data, OWNER_CTX, "m1.ics").activity
    after = from_ical(cal.to_ical(), OWNER_CTX, "m1.ics").activity
    assert fingerprint(after) == fingerprint(before)
    # Written again over the server's version, syncd's own choice wins.
    again = _people(to_ical(activity, OWNER_CTX, base=cal.to_ical()))
    assert [str(p.params["SCHEDULE-AGENT"]) for p in again] == ["CLIENT"] * 3
    assert not any("RSVP" in p.params for p in again)


# --- a real scheduling server -----------------------------------------------------------------------


@pytest.fixture
def anna(tmp_path: Path, cyrus: CalDavServer) -> Iterator[ServerWorld]:  # noqa: F811
    """A CRM whose owner anna@example.com syncs with her own calendar on Cyrus."""
    yield from server_world(tmp_path, cyrus, user="anna")


Mails = list[email.message.Message]


def _lifecycle(world: ServerWorld, **binding: object) -> tuple[Mails, Mails, Mails]:
    """Create, update, idle and delete an activity with two contacts, all from the CRM; returns the
    mails the server sent at each step."""
    phone = world.bind(**binding)
    world.save(meeting("s1", "Offer review", participants=(JAN, EVA)))
    assert world.sync().counts["remote_created"] == 1
    assert list(phone.items()) == [uid("s1")]
    created = world.server.mails()
    world.save(meeting("s1", "Offer review (moved)", days=4, participants=(JAN, EVA)))
    assert world.sync().counts["remote_updated"] == 1
    updated = world.server.mails()[len(created):]
    # What the server did to the item (SCHEDULE-STATUS, ...) is no change on either side.
    assert sum(world.sync().counts.values()) == 0
    assert [p.email for p in world.get("s1").participants] == [JAN.email, EVA.email]
    world.delete("s1")
    assert world.sync().counts["remote_deleted"] == 1
    assert phone.items() == {}
    return created, updated, world.server.mails()[len(created) + len(updated):]


def _sent(mails: Mails) -> list[tuple[str, str, str]]:
    """(recipient, iTIP method, UID) of each mail, sorted."""
    rows = []
    for mail in mails:
        itip = ical_of(mail)
        rows.append((str(mail["X-Envelope-To"]).strip("<>"), str(itip["METHOD"]), str(master(itip)["UID"])))
    return sorted(rows)


def test_no_mail_leaves_the_server_by_default(anna: ServerWorld) -> None:
    assert _lifecycle(anna) == ([], [], [])


def test_send_invitations_lets_the_server_invite_update_and_cancel(anna: ServerWorld) -> None:
    created, updated, cancelled = _lifecycle(anna, remote={"send_invitations": True})
    people = sorted(p.email or "" for p in (JAN, EVA))
    assert _sent(created) == [(who, "REQUEST", uid("s1")) for who in people]
    assert _sent(updated) == [(who, "REQUEST", uid("s1")) for who in people]
    assert _sent(cancelled) == [(who, "CANCEL", uid("s1")) for who in people]
    assert all(str(m["From"]).endswith(f"<{OWNER}>") for m in created + updated + cancelled)
    # The invitation asks Jan (no answer yet) for one; the update carries the new subject.
    [jan] = [a for m in created for a in master(ical_of(m))["ATTENDEE"] if str(a) == f"mailto:{JAN.email}"][:1]
    assert str(jan.params.get("RSVP")) == "TRUE"
    assert {str(master(ical_of(m))["SUMMARY"]) for m in updated} == {"Offer review (moved)"}


def test_an_item_the_user_made_on_the_server_still_schedules_as_the_user_asked(anna: ServerWorld) -> None:
    """syncd's default is about syncd's own writes: a phone's invitation is the server's to send."""
    phone = anna.bind()
    anna.sync()
    start = soon(2, 12)
    phone.create_event("phone-1@example.org", "Lunch", start, organizer=icalendar.vCalAddress(f"mailto:{OWNER}"),
                       attendee=icalendar.vCalAddress(f"mailto:{JAN.email}"))
    assert [str(m["X-Envelope-To"]).strip("<>") for m in anna.server.mails()] == [JAN.email]
    anna.server.clear_mail()
    report = anna.sync()
    assert report.counts["crm_created"] == 1, dict(report.counts)
    assert sum(anna.sync().counts.values()) == 0
    assert anna.server.mails() == []


def test_a_colleague_on_the_same_server_gets_nothing_delivered_by_syncds_writes(anna: ServerWorld) -> None:
    """Between users of one server, implicit scheduling delivers instead of mailing: the invitation would
    land in Bob's schedule inbox and default calendar. syncd puts his copy in his calendar itself, so
    by default the server must deliver nothing, for the organizer's write nor for Bob's answer."""
    bob = Participant(ParticipantKind.USER, BOB, "Bob")
    anna.bind("anna")
    bobs_phone = anna.bind("bob", owner=BOB, user="bob")
    inbox = anna.phone("bob", anna.server.calendar_path("bob", "Inbox"))
    default = anna.phone("bob", anna.server.calendar_path("bob", "Default"))
    before = (inbox.hrefs(), default.hrefs())
    anna.save(meeting("c1", "Customer visit", participants=(bob, JAN)))
    assert anna.sync("anna").counts["remote_created"] == 1
    assert anna.sync("bob").counts["remote_created"] == 1
    [copy] = bobs_phone.items()
    cal, etag = bobs_phone.get(copy)
    for attendee in master(cal)["ATTENDEE"]:
        if str(attendee) == f"mailto:{BOB}":
            attendee.params["PARTSTAT"] = "ACCEPTED"
    assert bobs_phone.put(copy, cal, etag) in (200, 204)
    assert anna.sync("bob").counts["crm_updated"] == 1
    assert anna.sync("anna").counts["remote_updated"] == 1
    assert (inbox.hrefs(), default.hrefs()) == before
    assert anna.phone("anna", anna.server.calendar_path("anna", "Inbox")).hrefs() == []
    assert anna.server.mails() == []


def test_a_phones_meeting_stays_scheduled_by_the_server(anna: ServerWorld) -> None:
    """The phone asked the server to schedule its meeting with Jan. Taking Jan from the server when
    the CRM edits it would make the server mail him a cancellation at once (Cyrus does): he stays the
    server's, which tells him of the change as it would of an edit on the phone, and of the deletion.
    Eva, whom the CRM adds, is syncd's, and gets nothing."""
    phone = anna.bind()
    anna.sync()
    phone.create_event("phone-2@example.org", "Site visit", soon(3, 10),
                       organizer=icalendar.vCalAddress(f"mailto:{OWNER}"),
                       attendee=icalendar.vCalAddress(f"mailto:{JAN.email}"))
    anna.sync()
    anna.server.clear_mail()
    [imported] = anna.all()
    anna.save(imported.replace(subject="Site visit and demo", participants=(*imported.participants, EVA)))
    assert anna.sync().counts["remote_updated"] == 1
    assert _sent(anna.server.mails()) == [(JAN.email, "REQUEST", "phone-2@example.org")]
    anna.server.clear_mail()
    anna.delete(imported.id)
    assert anna.sync().counts["remote_deleted"] == 1
    assert phone.items() == {}
    assert _sent(anna.server.mails()) == [(JAN.email, "CANCEL", "phone-2@example.org")]
