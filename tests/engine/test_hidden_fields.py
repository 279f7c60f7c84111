"""A client that rewrites an item without syncd's hidden data (X-SYNCD-* properties, the EWS blob) changed
nothing the user could see: the next pass keeps every hidden field in the CRM, while an edit of what the
user sees still comes in. Through a real Radicale and the EWS test server."""

from __future__ import annotations

from typing import Any

import icalendar
import pytest
from ews_fixture import Outlook
from ews_fixture import ews_fixture  # noqa: F401  (the fixture `ews`)
from ews_server import EwsServer
from test_sync_exchange import ExchangeWorld
from world import BOB, OWNER, World, master, meeting, soon, uid

from syncd.model import (
    Attachment,
    Direction,
    Participant,
    ParticipantKind,
    Regarding,
    RegardingKind,
    Response,
    Sensitivity,
    ShowAs,
)

HIDDEN: dict[str, Any] = dict(
    status="scheduled", type="demo", priority="urgent", direction=Direction.INBOUND, place="Utrecht, Oudegracht 1",
    project="Uitbreiding", close_reason="prijs te hoog", parent_id="ACT-0",
    regarding=(Regarding(RegardingKind.OPPORTUNITY, "opp-3", "Licenties"),),
    extra={"amount": 12500.5, "product": "Aptus CRM"},
    attachments=(Attachment("https://crm.example.com/files/offerte.pdf", "Offerte.pdf"),),
    categories=("Regio Noord",), sensitivity=Sensitivity.PRIVATE, show_as=ShowAs.TENTATIVE,
    participants=(
        Participant(ParticipantKind.CONTACT, "jan@klant.nl", "Jan", response=Response.ACCEPTED),
        Participant(ParticipantKind.ACCOUNT, None, "ACME BV"),
        Participant(ParticipantKind.RESOURCE, None, "Beamer 2"),
        Participant(ParticipantKind.RESOURCE, "zaal-1@example.com", "Zaal 1"),
    ),
)
FIELDS = tuple(HIDDEN)


def _stripped(cal: icalendar.Calendar) -> icalendar.Calendar:
    for component in cal.walk():
        for name in [n for n in component if n.startswith("X-")]:
            del component[name]
        attendees = component.get("ATTENDEE", [])
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            for param in [p for p in attendee.params if p.startswith("X-")]:
                del attendee.params[param]
    return cal


def test_a_caldav_client_that_drops_every_x_property_clears_nothing(world: World) -> None:
    phone = world.bind()
    world.save(meeting("h1", "Demo", **HIDDEN))
    world.sync()
    saved = world.get("h1")
    assert saved is not None
    cal, etag = phone.get(uid("h1"))
    assert phone.put(uid("h1"), _stripped(cal), etag) in (201, 204)
    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["crm_updated"] == 0, dict(report.counts)
    assert {f: getattr(world.get("h1"), f) for f in FIELDS} == {f: getattr(saved, f) for f in FIELDS}
    # A visible edit on the stripped item still comes in, and the hidden fields stay.
    phone.edit(uid("h1"), summary="Demo (verzet)", location="Zaal 2")
    report = world.sync()
    assert report.counts["crm_updated"] == 1, dict(report.counts)
    after = world.get("h1")
    assert after is not None and (after.subject, after.location) == ("Demo (verzet)", "Zaal 2")
    assert {f: getattr(after, f) for f in FIELDS} == {f: getattr(saved, f) for f in FIELDS}
    # The next CRM change writes syncd's properties back.
    world.save(after.replace(description="Agenda volgt"))
    world.sync()
    cal, _ = phone.get(uid("h1"))
    event = cal.walk("VEVENT")[0]
    assert "Oudegracht" in str(event["X-SYNCD-PLACE"]) and "X-SYNCD-EXTRA" in event


@pytest.fixture
def exchange(tmp_path: Any, ews: EwsServer) -> ExchangeWorld:  # noqa: F811
    return ExchangeWorld(tmp_path, None, None, server=ews)  # type: ignore[arg-type]


def test_an_exchange_client_that_drops_syncds_blob_clears_nothing(exchange: ExchangeWorld) -> None:
    outlook: Outlook = exchange.bind()
    exchange.save(meeting("h2", "Demo", **HIDDEN))
    exchange.sync()
    saved = exchange.get("h2")
    assert saved is not None
    item = outlook.by_crm_id("h2")
    with exchange.server.store.lock:
        for key in [k for k in item.extended if "syncd-extra" in k]:
            del item.extended[key]
    outlook.edit(item, Subject="Demo (verzet)")
    report = exchange.sync()
    assert report.result == "ok", report.error
    after = exchange.get("h2")
    assert after is not None and after.subject == "Demo (verzet)"
    assert {f: getattr(after, f) for f in FIELDS} == {f: getattr(saved, f) for f in FIELDS}
    assert soon(3) == after.start
    assert OWNER == after.owner


def test_a_private_appointment_is_private_in_a_participating_users_copy_too(world: World) -> None:
    annas_phone = world.bind("anna")
    bobs_phone = world.bind("bob", owner=BOB)
    bob = Participant(ParticipantKind.USER, BOB, "Bob")
    world.save(meeting("p1", "Salary talk", participants=(bob,), sensitivity=Sensitivity.PRIVATE,
                       show_as=ShowAs.OUT_OF_OFFICE))
    world.sync("anna")
    world.sync("bob")
    for phone in (annas_phone, bobs_phone):
        event = master(phone.get(uid("p1"))[0])
        assert (str(event["CLASS"]), str(event["X-MICROSOFT-CDO-BUSYSTATUS"])) == ("PRIVATE", "OOF")
    # Anna makes it confidential on her phone: the CRM and Bob's copy follow.
    annas_phone.edit(uid("p1"), **{"class": "CONFIDENTIAL"})
    world.sync("anna")
    world.sync("bob")
    assert world.get("p1").sensitivity is Sensitivity.CONFIDENTIAL
    assert str(master(bobs_phone.get(uid("p1"))[0])["CLASS"]) == "CONFIDENTIAL"


def test_pairing_adds_what_only_one_side_has_of_the_new_fields_without_a_conflict() -> None:
    from syncd.engine.merge import three_way

    crm = meeting("m1", "Demo")
    remote = crm.replace(extra={"amount": 5}, categories=("VIP",), attachments=(Attachment("https://x.example/a"),))
    merged = three_way(None, crm, remote, ("extra", "categories", "attachments"), crm_wins=True)
    assert merged.conflicting == () and merged.result == remote
