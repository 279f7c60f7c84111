"""Sensitivity, show-as, resources, an outside organizer, categories, attachments and the CRM's own fields
through iCalendar, as real clients write them; and what a client that drops syncd's X-properties did
not carry, which the CRM keeps."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from syncd.mapping.carried import keep_crm
from syncd.mapping.context import MappingContext
from syncd.mapping.fingerprint import changed_fields
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.options import MappingOptions
from syncd.model import (
    Activity,
    Attachment,
    CrmUser,
    Direction,
    Directory,
    Kind,
    Participant,
    ParticipantKind,
    Regarding,
    RegardingKind,
    Response,
    Role,
    Sensitivity,
    ShowAs,
)

AMS = ZoneInfo("Europe/Amsterdam")
OWNER = "anna@example.com"
CTX = MappingContext(
    owner=CrmUser(OWNER, "Anna", "Europe/Amsterdam"),
    options=MappingOptions(type_categories={"demo": "Demo"}),
    directory=Directory(users={OWNER: "Anna"}, contacts={"jan@klant.nl": "Jan"}),
)
START = datetime(2026, 12, 3, 10, tzinfo=AMS)

APTUS = Activity(
    id="APT-1", kind=Kind.APPOINTMENT, subject="Demo bij klant", owner=OWNER, start=START,
    end=START + timedelta(hours=1, minutes=30), timezone="Europe/Amsterdam", status="scheduled", type="demo",
    priority="high", direction=Direction.OUTBOUND, place="Utrecht", project="Uitbreiding", close_reason="prijs",
    description="Agenda volgt",
    sensitivity=Sensitivity.CONFIDENTIAL, show_as=ShowAs.OUT_OF_OFFICE,
    categories=("Regio Noord", "Product: Aptus"),
    attachments=(Attachment("https://crm.example.com/files/offerte-17.pdf", "Offerte 17.pdf"),
                 Attachment("https://crm.example.com/files/plan")),
    extra={"amount": 12500.5, "product": "Aptus CRM", "signed": False, "note": None},
    organizer=Participant(ParticipantKind.EXTERNAL, "board@partner.example", "Partner Board"),
    participants=(
        Participant(ParticipantKind.CONTACT, "jan@klant.nl", "Jan", Role.REQUIRED, Response.ACCEPTED),
        Participant(ParticipantKind.RESOURCE, "zaal-1@example.com", "Zaal 1"),
        Participant(ParticipantKind.GROUP, "sales@example.com", "Sales", Role.OPTIONAL),
        Participant(ParticipantKind.ACCOUNT, None, "ACME BV"),
    ),
    regarding=(Regarding(RegardingKind.ACCOUNT, "acc-7", "ACME BV"),),
)


def _event(text: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//client//EN\r\nBEGIN:VEVENT\r\nUID:ext-1@client\r\n"
        "DTSTAMP:20261129T090000Z\r\nDTSTART:20261203T090000Z\r\nDTEND:20261203T100000Z\r\nSUMMARY:Overleg\r\n"
        + text + "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def test_every_new_field_round_trips_and_shows_as_clients_read_it() -> None:
    data = to_ical(APTUS, CTX)
    event = Calendar.from_ical(data).events[0]
    assert str(event["CLASS"]) == "CONFIDENTIAL"
    assert (str(event["TRANSP"]), str(event["X-MICROSOFT-CDO-BUSYSTATUS"])) == ("OPAQUE", "OOF")
    assert [str(c) for c in event["CATEGORIES"].cats] == ["Demo", "Regio Noord", "Product: Aptus"]
    attach = event["ATTACH"]
    assert [(str(a), a.params.get("FILENAME")) for a in attach] == [
        ("https://crm.example.com/files/offerte-17.pdf", "Offerte 17.pdf"), ("https://crm.example.com/files/plan", None)
    ]
    organizer = event["ORGANIZER"]
    assert (str(organizer), organizer.params["CN"]) == ("mailto:board@partner.example", "Partner Board")
    cutypes = {str(a): a.params.get("CUTYPE") for a in event["ATTENDEE"]}
    assert cutypes == {"mailto:jan@klant.nl": None, "mailto:zaal-1@example.com": "ROOM",
                       "mailto:sales@example.com": "GROUP"}
    # The CRM's own fields never show up as text the user reads.
    assert str(event["DESCRIPTION"]) == "Agenda volgt" and "12500" not in str(event.get("DESCRIPTION"))
    assert from_ical(data, CTX, "r").activity == APTUS


@pytest.mark.parametrize("show_as", list(ShowAs))
def test_each_show_as_and_sensitivity_round_trips(show_as: ShowAs) -> None:
    for sensitivity in (*Sensitivity, None):
        activity = APTUS.replace(show_as=show_as, sensitivity=sensitivity)
        assert from_ical(to_ical(activity, CTX), CTX, "r").activity == activity


@pytest.mark.parametrize(
    ("props", "sensitivity", "show_as"),
    [
        ("CLASS:PRIVATE\r\n", Sensitivity.PRIVATE, None),
        ("CLASS:PUBLIC\r\nTRANSP:OPAQUE\r\n", Sensitivity.NORMAL, None),
        ("CLASS:X-OWNER-ONLY\r\n", Sensitivity.PRIVATE, None),  # RFC 5545 3.8.1.3: unknown is private
        ("TRANSP:TRANSPARENT\r\n", None, ShowAs.FREE),
        ("TRANSP:TRANSPARENT\r\nX-MICROSOFT-CDO-BUSYSTATUS:BUSY\r\n", None, ShowAs.FREE),  # TRANSP changed since
        ("TRANSP:OPAQUE\r\nX-MICROSOFT-CDO-BUSYSTATUS:FREE\r\n", None, ShowAs.BUSY),
        ("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE\r\n", None, ShowAs.TENTATIVE),
        ("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE\r\n", None, ShowAs.BUSY),
    ],
)
def test_class_and_transp_as_clients_write_them(
    props: str, sensitivity: Sensitivity | None, show_as: ShowAs | None
) -> None:
    activity = from_ical(_event(props), CTX, "r").activity
    assert (activity.sensitivity, activity.show_as) == (sensitivity, show_as)


def test_a_task_keeps_its_class_and_the_crm_keeps_its_show_as() -> None:
    task = Activity("t1", Kind.TASK, "Offerte sturen", OWNER, due=START, timezone="Europe/Amsterdam",
                    sensitivity=Sensitivity.PRIVATE, show_as=ShowAs.FREE)
    parsed = from_ical(to_ical(task, CTX), CTX, "r")
    todo = Calendar.from_ical(to_ical(task, CTX)).todos[0]
    assert "TRANSP" not in todo  # RFC 5545 has no TRANSP on a VTODO
    assert parsed.activity.sensitivity is Sensitivity.PRIVATE and parsed.activity.show_as is None
    assert keep_crm(parsed.activity, task, parsed.uncarried).show_as is ShowAs.FREE


def test_a_room_known_by_urn_reads_and_is_written_back_as_the_same_attendee() -> None:
    data = _event(
        "ORGANIZER;CN=Ext:mailto:ext@partner.example\r\n"
        "ATTENDEE;CUTYPE=ROOM;PARTSTAT=ACCEPTED:urn:uuid:6f1c1c5e-8d3b-4f5e-9a56-0f3a4b1c2d3e\r\n"
        "ATTENDEE;CUTYPE=INDIVIDUAL;CN=Jan:mailto:jan@klant.nl\r\n"
        "ATTENDEE;CN=Anna:mailto:anna@example.com\r\n"
    )
    parsed = from_ical(data, CTX, "r").activity
    room = next(p for p in parsed.participants if p.email is None)
    assert (room.kind, room.name, room.response) == (
        ParticipantKind.RESOURCE, "urn:uuid:6f1c1c5e-8d3b-4f5e-9a56-0f3a4b1c2d3e", Response.ACCEPTED)
    assert parsed.organizer == Participant(ParticipantKind.EXTERNAL, "ext@partner.example", "Ext")
    assert parsed.owner == OWNER
    again = Calendar.from_ical(to_ical(parsed, CTX, data)).events[0]
    addresses = [str(a) for a in again["ATTENDEE"]]
    assert "urn:uuid:6f1c1c5e-8d3b-4f5e-9a56-0f3a4b1c2d3e" in addresses
    assert "X-SYNCD-PARTICIPANT" not in again  # the room is its attendee, not also a hidden copy
    assert str(again["ORGANIZER"]) == "mailto:ext@partner.example"
    assert changed_fields(from_ical(to_ical(parsed, CTX, data), CTX, "r").activity, parsed) == []


def test_an_inline_file_is_not_carried_but_stays_on_the_calendar_item() -> None:
    data = _event(
        "ATTACH;FMTTYPE=text/plain;ENCODING=BASE64;VALUE=BINARY:aGVsbG8=\r\n"
        "ATTACH;X-FILENAME=plan.pdf;MANAGED-ID=7:https://files.example/plan.pdf\r\n"
        "ATTACH:relative/path.pdf\r\n"
    )
    parsed = from_ical(data, CTX, "r").activity
    assert parsed.attachments == (Attachment("https://files.example/plan.pdf", "plan.pdf"),)
    renamed = parsed.replace(attachments=(Attachment("https://files.example/plan.pdf", "plan v2.pdf"),))
    event = Calendar.from_ical(to_ical(renamed, CTX, data)).events[0]
    values = {str(a.params.get("VALUE", "URI")): a for a in event["ATTACH"]}
    assert values["BINARY"].to_ical() == b"aGVsbG8="
    carried = next(a for a in event["ATTACH"] if str(a) == "https://files.example/plan.pdf")
    assert (carried.params["FILENAME"], carried.params["MANAGED-ID"]) == ("plan v2.pdf", "7")
    assert any(str(a) == "relative/path.pdf" for a in event["ATTACH"])


def test_a_users_category_is_the_crms_own_and_the_types_is_not() -> None:
    data = to_ical(APTUS, CTX)
    cal = Calendar.from_ical(data)
    cal.events[0]["CATEGORIES"].cats.append("Mijn eigen")
    parsed = from_ical(cal.to_ical(), CTX, "r")
    assert parsed.activity.categories == ("Regio Noord", "Product: Aptus", "Mijn eigen")
    assert parsed.activity.type == "demo" and "Demo" in parsed.categories  # import_category sees every one
    removed = APTUS.replace(categories=("Regio Noord",))
    event = Calendar.from_ical(to_ical(removed, CTX, cal.to_ical())).events[0]
    assert [str(c) for c in event["CATEGORIES"].cats] == ["Demo", "Regio Noord"]


def _strip_x(data: bytes) -> bytes:
    """What a client that drops every X-property (and X- parameter) writes back."""
    cal = Calendar.from_ical(data)
    for component in cal.walk():
        for name in [n for n in component if n.startswith("X-")]:
            del component[name]
        for value in component.get("ATTENDEE", []):
            for param in [p for p in value.params if p.startswith("X-")]:
                del value.params[param]
    return cal.to_ical()


def test_a_client_that_drops_the_x_properties_cleared_nothing() -> None:
    stripped = _strip_x(to_ical(APTUS, CTX))
    assert b"X-SYNCD" not in stripped
    parsed = from_ical(stripped, CTX, "r")
    assert parsed.activity.place is None  # what the item alone says ...
    kept = keep_crm(parsed.activity, APTUS, parsed.uncarried)
    assert kept == APTUS.replace(show_as=kept.show_as)  # ... and what the CRM keeps: everything
    assert kept.show_as is ShowAs.OUT_OF_OFFICE  # OPAQUE without Outlook's property: not free, the CRM's value


def test_what_a_user_sees_keeps_its_two_way_meaning_without_the_x_properties() -> None:
    cal = Calendar.from_ical(_strip_x(to_ical(APTUS, CTX)))
    event = cal.events[0]
    for name in ("SUMMARY", "CLASS", "TRANSP", "STATUS", "CATEGORIES"):
        del event[name]
    event.add("SUMMARY", "Demo verzet")
    event.add("CLASS", "PUBLIC")
    event.add("TRANSP", "TRANSPARENT")
    event.add("STATUS", "CANCELLED")
    event.add("CATEGORIES", ["Regio Noord"])
    parsed = from_ical(cal.to_ical(), CTX, "r")
    kept = keep_crm(parsed.activity, APTUS, parsed.uncarried)
    assert (kept.subject, kept.sensitivity, kept.show_as, kept.status) == (
        "Demo verzet", Sensitivity.NORMAL, ShowAs.FREE, "cancelled")
    assert (kept.type, kept.categories) == (None, ("Regio Noord",))  # the type's category is gone too
    assert (kept.place, kept.project, kept.extra, kept.regarding) == (
        APTUS.place, APTUS.project, APTUS.extra, APTUS.regarding)
    # A status still shown as the CRM's many-to-one table shows it stays the CRM's exact one.
    planned = from_ical(_strip_x(to_ical(APTUS, CTX)), CTX, "r")
    assert planned.activity.status == "planned"
    assert keep_crm(planned.activity, APTUS, planned.uncarried).status == "scheduled"
