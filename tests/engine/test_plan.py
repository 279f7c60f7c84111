"""The planner's decision table, case by case, without I/O: what happens to one activity given its CRM
version, its calendar version and its link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.connectors.base import RemoteItem
from syncd.engine.actions import (
    PullCreate,
    PullDelete,
    PushCreate,
    PushDelete,
    PushUpdate,
    RecordConflict,
    Relink,
    Skip,
    Unlink,
    Write,
)
from syncd.engine.links import Link, LinkStatus
from syncd.engine.plan import ItemInput, Policy, Seen, crm_fingerprint, decide, remote_fingerprint
from syncd.model import Activity, Kind, Participant, ParticipantKind, Response

OWNER = "anna@example.com"
T0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
BASE = Activity(id="a1", kind=Kind.APPOINTMENT, subject="Kick-off", owner=OWNER, start=T0,
                end=T0 + timedelta(hours=1), location="Room A")
POLICY = Policy(owner=OWNER)


def link(base: Activity = BASE, status: LinkStatus = LinkStatus.SYNCED, etag: str = "e1") -> Link:
    return Link("b", base.id, base.kind, "/cal/a1.ics", etag, crm_fingerprint(base),
                remote_fingerprint(base, POLICY), base, status)


def remote(activity: Activity, etag: str = "e2", modified: datetime | None = None) -> RemoteItem:
    return RemoteItem("/cal/a1.ics", etag, "a1@syncd", activity.id, activity, modified_at=modified)


def item(**kw: object) -> ItemInput:
    defaults: dict[str, object] = dict(key="a1", crm=BASE, crm_in_scope=True)
    defaults.update(kw)
    return ItemInput(**defaults)  # type: ignore[arg-type]


def test_nothing_changed_is_nothing_to_do() -> None:
    assert decide(item(link=link()), POLICY) is None


def test_a_new_crm_activity_is_created_in_the_calendar() -> None:
    assert isinstance(decide(item(), POLICY), PushCreate)


def test_a_new_activity_outside_the_window_is_not_created() -> None:
    assert decide(item(crm_in_window=False), POLICY) is None


def test_a_crm_edit_is_pushed_with_the_links_etag() -> None:
    action = decide(item(crm=BASE.replace(subject="New"), link=link()), POLICY)
    assert isinstance(action, PushUpdate) and action.link.etag == "e1"


def test_a_calendar_edit_is_pulled_into_the_crm() -> None:
    action = decide(item(link=link(), remote=remote(BASE.replace(location="Room B")), seen=Seen.CHANGED), POLICY)
    assert isinstance(action, Write) and action.save_crm and not action.push
    assert action.result.location == "Room B"


def test_an_etag_change_without_content_change_only_refreshes_the_link() -> None:
    action = decide(item(link=link(), remote=remote(BASE), seen=Seen.CHANGED), POLICY)
    assert isinstance(action, Relink)


def test_a_calendar_item_cannot_change_the_owner_or_the_kind() -> None:
    theirs = BASE.replace(owner="mallory@example.com", kind=Kind.CALL, location="Room B")
    action = decide(item(link=link(), remote=remote(theirs), seen=Seen.CHANGED), POLICY)
    assert isinstance(action, Write)
    assert (action.result.owner, action.result.kind, action.result.location) == (OWNER, Kind.APPOINTMENT, "Room B")


def test_merge_keeps_changes_to_different_fields_from_both_sides() -> None:
    crm = BASE.replace(subject="CRM subject")
    theirs = BASE.replace(location="Room B")
    action = decide(item(crm=crm, link=link(), remote=remote(theirs), seen=Seen.CHANGED), POLICY)
    assert isinstance(action, Write) and action.save_crm and action.push
    assert (action.result.subject, action.result.location) == ("CRM subject", "Room B")
    assert action.conflict is None  # no field clashed: nothing to record


def test_merge_gives_a_clashing_field_to_the_winner_and_records_it() -> None:
    crm = BASE.replace(subject="CRM subject")
    theirs = BASE.replace(subject="Phone subject", location="Room B")
    for crm_wins, expected in ((True, "CRM subject"), (False, "Phone subject")):
        policy = Policy(owner=OWNER, crm_wins_clash=crm_wins)
        action = decide(item(crm=crm, link=link(), remote=remote(theirs), seen=Seen.CHANGED), policy)
        assert isinstance(action, Write)
        assert action.result.subject == expected and action.result.location == "Room B"
        assert action.conflict is not None and action.conflict.fields == ("subject",)


def test_participants_merge_one_by_one() -> None:
    bob = Participant(ParticipantKind.USER, "bob@example.com", "Bob")
    eve = Participant(ParticipantKind.CONTACT, "eve@example.com", "Eve")
    base = BASE.replace(participants=(bob,))
    crm = base.replace(participants=(bob, eve))  # the CRM invited Eve
    accepted = Participant(ParticipantKind.USER, "bob@example.com", "Bob", response=Response.ACCEPTED)
    theirs = base.replace(participants=(accepted,))  # Bob accepted in his calendar
    action = decide(item(crm=crm, link=link(base), remote=remote(theirs), seen=Seen.CHANGED), POLICY)
    assert isinstance(action, Write)
    assert action.result.participants == (accepted, eve)


@pytest.mark.parametrize(("crm_time", "expected"), [(T0 + timedelta(minutes=5), "CRM"), (T0 - timedelta(minutes=5), "Phone")])
def test_newest_wins_compares_modification_times(crm_time: datetime, expected: str) -> None:
    crm = BASE.replace(subject="CRM", updated_at=crm_time)
    theirs = BASE.replace(subject="Phone")
    action = decide(item(crm=crm, link=link(), remote=remote(theirs, modified=T0), seen=Seen.CHANGED),
                    Policy(owner=OWNER, conflict="newest-wins"))
    assert isinstance(action, Write) and action.result.subject == expected


def test_manual_records_and_touches_nothing() -> None:
    action = decide(item(crm=BASE.replace(subject="CRM"), link=link(), remote=remote(BASE.replace(subject="Phone")),
                         seen=Seen.CHANGED), Policy(owner=OWNER, conflict="manual"))
    assert isinstance(action, RecordConflict) and action.conflict.resolution == "pending"
    waiting = link(status=LinkStatus.CONFLICT)
    assert decide(item(crm=BASE.replace(subject="CRM again"), link=waiting), POLICY) is None


def test_a_crm_deletion_deletes_in_the_calendar() -> None:
    assert isinstance(decide(item(crm=None, link=link()), POLICY), PushDelete)


def test_a_calendar_deletion_of_an_open_activity_deletes_or_cancels() -> None:
    assert isinstance(decide(item(link=link(), seen=Seen.DELETED), POLICY), PullDelete)
    cancel = decide(item(link=link(), seen=Seen.DELETED), Policy(owner=OWNER, on_remote_delete="cancel"))
    assert isinstance(cancel, PullDelete) and cancel.cancel


def test_a_completed_activity_is_recreated_or_unlinked_never_deleted() -> None:
    assert isinstance(decide(item(link=link(), seen=Seen.DELETED, crm_completed=True), POLICY), PushCreate)
    unlink = decide(item(link=link(), seen=Seen.DELETED, crm_completed=True),
                    Policy(owner=OWNER, on_remote_delete_completed="unlink"))
    assert isinstance(unlink, Unlink)


def test_an_edit_in_the_crm_outlives_a_deletion_in_the_calendar() -> None:
    assert isinstance(decide(item(crm=BASE.replace(subject="New"), link=link(), seen=Seen.DELETED), POLICY), PushCreate)


def test_remote_wins_brings_back_an_activity_deleted_in_the_crm_but_edited_in_the_calendar() -> None:
    action = decide(item(crm=None, link=link(), remote=remote(BASE.replace(subject="Phone")), seen=Seen.CHANGED),
                    Policy(owner=OWNER, conflict="remote-wins"))
    assert isinstance(action, PullCreate) and action.activity.id == "a1"


def test_an_activity_leaving_the_users_scope_leaves_their_calendar() -> None:
    action = decide(item(link=link(), crm_in_scope=False), POLICY)
    assert isinstance(action, PushDelete) and "no longer" in action.reason


def test_a_calendar_item_is_imported_only_when_the_filter_allows() -> None:
    new = remote(BASE.replace(id="cal-1"))
    assert isinstance(decide(ItemInput(key="remote:x", remote=new, seen=Seen.CHANGED), POLICY), PullCreate)
    assert decide(ItemInput(key="remote:x", remote=new, seen=Seen.CHANGED, importable=False), POLICY) is None


def test_a_stray_item_of_a_deleted_activity_is_deleted_not_imported() -> None:
    action = decide(ItemInput(key="a1", remote=remote(BASE), seen=Seen.CHANGED, crm_tombstone=True), POLICY)
    assert isinstance(action, PushDelete)


def test_an_unreadable_item_is_skipped_as_an_error() -> None:
    broken = RemoteItem("/cal/x.ics", "e", None, None, None, error="x: DTSTART: not a date")
    action = decide(ItemInput(key="remote:/cal/x.ics", remote=broken, seen=Seen.CHANGED), POLICY)
    assert isinstance(action, Skip) and action.error


def test_one_way_bindings() -> None:
    crm_only = Policy(owner=OWNER, direction="crm-to-remote")
    theirs = remote(BASE.replace(location="Room B"))
    action = decide(item(link=link(), remote=theirs, seen=Seen.CHANGED), crm_only)
    assert isinstance(action, PushUpdate)  # the calendar's edit is reverted
    assert decide(ItemInput(key="remote:x", remote=remote(BASE.replace(id="c")), seen=Seen.CHANGED), crm_only) is None
    to_crm = Policy(owner=OWNER, direction="remote-to-crm")
    assert decide(item(), to_crm) is None  # nothing is created in the calendar
    assert isinstance(decide(item(crm=None, link=link()), to_crm), Unlink)


def test_a_copy_in_a_participants_calendar_only_brings_back_their_answer() -> None:
    bob = Participant(ParticipantKind.USER, "bob@example.com", "Bob")
    crm = BASE.replace(participants=(bob,))
    accepted = Participant(ParticipantKind.USER, "bob@example.com", "Bob", response=Response.ACCEPTED)
    theirs = crm.replace(subject="Bob renamed it", participants=(accepted,))
    policy = Policy(owner="bob@example.com")
    action = decide(item(crm=crm, crm_is_copy=True, link=link(crm), remote=remote(theirs), seen=Seen.CHANGED), policy)
    assert isinstance(action, Write) and action.save_crm and action.push
    assert action.result.subject == "Kick-off" and action.result.participants == (accepted,)
    gone = decide(item(crm=crm, crm_is_copy=True, link=link(crm), seen=Seen.DELETED), policy)
    assert isinstance(gone, Unlink) and gone.save_crm is not None
    assert gone.save_crm.participants[0].response == Response.DECLINED


def test_a_delete_decided_on_a_fresh_read_names_the_fresh_etag() -> None:
    """Found by the state machine: a content-free edit on the phone must not make the delete fail."""
    action = decide(item(crm=None, link=link(etag="old"), remote=remote(BASE, etag="new"), seen=Seen.CHANGED), POLICY)
    assert isinstance(action, PushDelete) and action.link.etag == "new"
