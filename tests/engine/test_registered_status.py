"""A status configured as "registered" (a contact that happened; seed 002: the date of an activity is
editable only while it is planned): a calendar edit of its times is written back over and reported,
other calendar edits still come in. Planner cases first, then a real Radicale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from world import World, meeting, soon, uid

from syncd.connectors.base import RemoteItem
from syncd.engine.actions import PushUpdate, Write
from syncd.engine.links import Link, LinkStatus
from syncd.engine.plan import ItemInput, Policy, Seen, crm_fingerprint, decide, remote_fingerprint
from syncd.model import Activity, Kind

OWNER = "anna@example.com"
T0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
DONE = Activity(id="a1", kind=Kind.APPOINTMENT, subject="Bezoek", owner=OWNER, start=T0,
                end=T0 + timedelta(hours=1), location="Kantoor", status="Registered")
POLICY = Policy(owner=OWNER, registered_statuses=frozenset({"registered"}))


def _link(base: Activity = DONE) -> Link:
    return Link("b", base.id, base.kind, "/cal/a1.ics", "e1", crm_fingerprint(base), remote_fingerprint(base, POLICY),
                base, LinkStatus.SYNCED)


def _item(theirs: Activity, crm: Activity = DONE, link: Link | None = None) -> ItemInput:
    remote = RemoteItem("/cal/a1.ics", "e2", "a1@syncd", "a1", theirs)
    return ItemInput(key="a1", link=link or _link(), crm=crm, crm_in_scope=True, remote=remote, seen=Seen.CHANGED)


def test_a_moved_registered_activity_is_moved_back_and_reported() -> None:
    moved = DONE.replace(start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1))
    action = decide(_item(moved), POLICY)
    assert isinstance(action, PushUpdate) and action.activity == DONE
    assert action.reverted == ("start", "end")


def test_its_other_fields_still_come_in_and_the_times_go_back_in_the_same_write() -> None:
    moved = DONE.replace(start=T0 + timedelta(hours=2), end=T0 + timedelta(hours=3), location="Bij de klant")
    action = decide(_item(moved), POLICY)
    assert isinstance(action, Write) and action.save_crm and action.push
    assert (action.result.start, action.result.location) == (T0, "Bij de klant")
    assert action.reverted == ("start", "end")


def test_a_planned_activity_moves_as_always() -> None:
    planned = DONE.replace(status="planned")
    moved = planned.replace(start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1))
    action = decide(_item(moved, crm=planned, link=_link(planned)), POLICY)
    assert isinstance(action, Write) and action.save_crm and not action.push and not action.reverted
    assert action.result.start == moved.start


def test_the_crm_moving_a_registered_activity_is_no_calendar_edit() -> None:
    moved_in_crm = DONE.replace(start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1))
    action = decide(_item(DONE, crm=moved_in_crm), POLICY)
    assert isinstance(action, PushUpdate) and action.reverted == ()


def test_a_binding_that_never_writes_to_the_calendar_only_keeps_the_crms_times() -> None:
    moved = DONE.replace(start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1))
    action = decide(_item(moved), Policy(owner=OWNER, direction="remote-to-crm",
                                         registered_statuses=frozenset({"registered"})))
    assert action is None or not getattr(action, "save_crm", False)


def test_through_radicale_the_phones_move_is_undone_and_counted(world: World) -> None:
    phone = world.bind(registered_statuses=["registered"])
    world.save(meeting("r1", "Bezoek ACME", status="registered"))
    world.sync()
    phone.edit(uid("r1"), dtstart=soon(5), dtend=soon(5) + timedelta(hours=1), location="Bij ACME")
    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["reverted"] == 1 and report.counts["remote_updated"] == 1, dict(report.counts)
    crm = world.get("r1")
    assert crm is not None and (crm.start, crm.location) == (soon(3), "Bij ACME")
    cal, _ = phone.get(uid("r1"))
    assert cal.walk("VEVENT")[0].decoded("DTSTART") == soon(3)
    assert sum(world.sync().counts.values()) == 0
