"""Sensitivity, show-as, resources, an outside organizer, categories, attachments and the CRM's own fields
through schema-valid EWS items; and an item without syncd's blob, whose hidden fields the CRM keeps."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from ews_schema import assert_valid
from exchangelib.properties import Mailbox

from mapping.ews_support import create_payload, reparse, update_payload
from syncd.mapping.carried import keep_crm
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import apply_to_ews, from_ews, to_ews
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
START = datetime(2030, 12, 3, 10, tzinfo=AMS)
APTUS = Activity(
    id="APT-1", kind=Kind.APPOINTMENT, subject="Demo bij klant", owner=OWNER, start=START,
    end=START + timedelta(hours=1, minutes=30), timezone="Europe/Amsterdam", status="scheduled", type="demo",
    priority="high", direction=Direction.OUTBOUND, place="Utrecht", project="Uitbreiding", close_reason="prijs",
    sensitivity=Sensitivity.CONFIDENTIAL, show_as=ShowAs.OUT_OF_OFFICE,
    categories=("Regio Noord", "Product: Aptus", "Ĳ" * 300),
    attachments=(Attachment("https://crm.example.com/files/offerte-17.pdf", "Offerte 17.pdf"),),
    extra={"amount": 12500.5, "product": "Aptus CRM", "signed": False, "note": None},
    organizer=Participant(ParticipantKind.EXTERNAL, "board@partner.example", "Partner Board"),
    participants=(
        Participant(ParticipantKind.CONTACT, "jan@klant.nl", "Jan", Role.REQUIRED, Response.ACCEPTED),
        Participant(ParticipantKind.RESOURCE, "zaal-1@example.com", "Zaal 1", Role.OPTIONAL),
        Participant(ParticipantKind.GROUP, "sales@example.com", "Sales"),
        Participant(ParticipantKind.ACCOUNT, None, "ACME BV"),
        Participant(ParticipantKind.RESOURCE, None, "Beamer 2"),
    ),
    regarding=(Regarding(RegardingKind.ACCOUNT, "acc-7", "ACME BV"),),
)


def test_every_new_field_round_trips_through_a_valid_item() -> None:
    item = to_ews(APTUS, CTX)
    assert_valid(create_payload(item))
    assert (item.sensitivity, item.legacy_free_busy_status) == ("Confidential", "OOF")
    assert [a.mailbox.email_address for a in item.resources] == ["zaal-1@example.com"]
    assert [a.mailbox.email_address for a in item.required_attendees] == ["jan@klant.nl", "sales@example.com"]
    assert item.categories == ["Demo", "Regio Noord", "Product: Aptus", "Ĳ" * 255]  # Exchange's length
    assert from_ews(reparse(item), CTX).activity == APTUS


@pytest.mark.parametrize(("shown", "expected"), [
    ("Personal", Sensitivity.PRIVATE), ("Private", Sensitivity.PRIVATE), ("Confidential", Sensitivity.CONFIDENTIAL),
    ("Normal", None),
])
def test_outlooks_sensitivity_reads_as_the_crms(shown: str, expected: Sensitivity | None) -> None:
    item = reparse(to_ews(APTUS.replace(sensitivity=None), CTX))
    item.sensitivity = shown
    assert from_ews(item, CTX).activity.sensitivity is expected


def test_show_as_and_the_status_table_share_free_busy() -> None:
    # Without a show-as the status decides (postponed is Tentative); a set one overrides it.
    postponed = APTUS.replace(status="postponed", show_as=None)
    assert to_ews(postponed, CTX).legacy_free_busy_status == "Tentative"
    for show_as in (*ShowAs, None):
        activity = APTUS.replace(status="postponed", show_as=show_as)
        assert from_ews(reparse(to_ews(activity, CTX)), CTX).activity == activity
    # A user's change in Outlook: Free on a busy meeting reads as free, the status kept where it still fits.
    item = reparse(to_ews(APTUS.replace(show_as=None), CTX))
    item.legacy_free_busy_status = "Free"
    assert from_ews(item, CTX).activity.show_as is ShowAs.FREE
    item.legacy_free_busy_status = "WorkingElsewhere"
    assert from_ews(item, CTX).activity.show_as is ShowAs.BUSY


def test_a_users_category_in_outlook_is_the_crms_own_and_an_update_writes_the_crms_list() -> None:
    item = reparse(to_ews(APTUS, CTX))
    item.categories = [*item.categories, "Mijn eigen"]
    read = from_ews(item, CTX).activity
    assert read.categories == ("Regio Noord", "Product: Aptus", "Ĳ" * 255, "Mijn eigen")
    changed = apply_to_ews(item, APTUS.replace(categories=("Regio Noord",)), CTX)
    assert "categories" in changed and item.categories == ["Demo", "Regio Noord"]
    assert_valid(update_payload(item, changed))


def _without_blob(activity: Activity) -> object:
    item = reparse(to_ews(activity, CTX))
    item.syncd_extra = None  # what a client or a copy that drops syncd's extended property leaves
    return item


def test_an_item_without_syncds_blob_cleared_nothing_hidden() -> None:
    parsed = from_ews(_without_blob(APTUS), CTX)
    assert parsed.activity.place is None and parsed.activity.extra == {}
    kept = keep_crm(parsed.activity, APTUS, parsed.uncarried)
    for name in ("place", "project", "close_reason", "regarding", "extra", "attachments", "direction", "status",
                 "priority", "type", "categories", "show_as", "sensitivity"):
        assert getattr(kept, name) == getattr(APTUS, name), name
    assert {p.key for p in kept.participants} == {p.key for p in APTUS.participants}
    assert [p.kind for p in kept.participants if p.email == "jan@klant.nl"] == [ParticipantKind.CONTACT]


def test_what_outlook_shows_keeps_its_two_way_meaning_without_the_blob() -> None:
    item = _without_blob(APTUS)
    item.subject = "Demo verzet"
    item.sensitivity = "Normal"
    item.legacy_free_busy_status = "Free"
    item.importance = "Low"
    parsed = from_ews(item, CTX)
    kept = keep_crm(parsed.activity, APTUS, parsed.uncarried)
    assert (kept.subject, kept.sensitivity, kept.show_as, kept.priority) == ("Demo verzet", None, ShowAs.FREE, "low")
    assert (kept.place, kept.extra) == (APTUS.place, APTUS.extra)


def test_a_blob_from_before_the_new_fields_keeps_the_crms() -> None:
    item = reparse(to_ews(APTUS, CTX))
    blob = json.loads(item.syncd_extra)
    for key in ("attachments", "crm_fields", "organizer", "categories"):
        del blob[key]
    item.syncd_extra = json.dumps(blob)
    parsed = from_ews(item, CTX)
    kept = keep_crm(parsed.activity, APTUS, parsed.uncarried)
    assert (kept.attachments, kept.extra, kept.organizer) == (APTUS.attachments, APTUS.extra, APTUS.organizer)


def test_an_outlook_meeting_from_outside_keeps_its_organizer() -> None:
    item = reparse(to_ews(APTUS.replace(organizer=None), CTX))
    item.syncd_extra = None
    item.organizer = Mailbox(email_address="ceo@partner.example", name="CEO")
    parsed = from_ews(item, CTX).activity
    assert parsed.organizer == Participant(ParticipantKind.EXTERNAL, "ceo@partner.example", "CEO")


def test_a_task_keeps_sensitivity_and_its_show_as_stays_the_crms() -> None:
    task = Activity("t1", Kind.TASK, "Offerte sturen", OWNER, due=START, timezone="Europe/Amsterdam",
                    sensitivity=Sensitivity.PRIVATE, show_as=ShowAs.FREE, categories=("VIP",),
                    extra={"amount": 3})
    item = to_ews(task, CTX)
    assert_valid(create_payload(item))
    parsed = from_ews(reparse(item), CTX)
    assert parsed.activity.sensitivity is Sensitivity.PRIVATE and parsed.activity.show_as is None
    assert keep_crm(parsed.activity, task, parsed.uncarried) == task
