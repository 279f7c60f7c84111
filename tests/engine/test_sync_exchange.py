"""Two-way sync of a CRM store with an Exchange mailbox (the EWS test server), scenario by scenario."""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, timedelta

import pytest
from click.testing import CliRunner
from ews_fixture import (
    PASSWORD,
    Outlook,
    crm_id,
    ews_fixture,  # noqa: F401  (the fixture `ews`)
)
from exchange_world import ExchangeWorld, world  # noqa: F401  (the fixture `world`)
from ews_server import RequestRecord
from world import BOB, OWNER, idle, meeting, soon, task

from syncd.model import Participant, ParticipantKind, Recurrence, Sensitivity, ShowAs


def test_initial_push_puts_appointments_in_the_calendar_and_tasks_in_tasks(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(meeting("a1", "Kick-off"), meeting("a2", "Review", days=4), task("t1", "Send the offer"))
    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["remote_created"] == 3
    assert outlook.subjects() == ["Kick-off", "Review"]
    assert outlook.subjects("tasks") == ["Send the offer"]
    assert outlook.by_crm_id("a1").text("Start") == soon(3).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert crm_id(outlook.items("tasks")[0]) == "t1"


def test_an_initial_push_creates_a_hundred_items_per_request(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(*(meeting(f"b{i:03d}", f"Meeting {i}", days=1 + i % 30) for i in range(150)))
    world.server.requests.clear()
    report = world.sync()
    assert report.result == "ok" and report.counts["remote_created"] == 150, (report.error, report.errors[:3])
    assert world.server.operations().count("CreateItem") == 2
    assert len(outlook.items()) == 150 and {crm_id(i) for i in outlook.items()} == {f"b{i:03d}" for i in range(150)}


def test_a_second_pass_sends_one_sync_request_per_folder_and_changes_nothing(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(*(meeting(f"n{i}", f"Meeting {i}", days=i + 1) for i in range(4)), task("t1", "Call back"))
    world.sync()
    world.sync()  # sees its own writes once, by ChangeKey: nothing to fetch
    before = {i.id: i.change_key for i in outlook.items() + outlook.items("tasks")}
    world.server.requests.clear()
    assert idle(world)
    assert world.server.operations() == ["SyncFolderItems", "SyncFolderItems"]
    assert {i.id: i.change_key for i in outlook.items() + outlook.items("tasks")} == before


def test_items_created_in_the_mailbox_become_crm_activities(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.sync()
    outlook.create_event("Lunch with Marek", soon(2, 12), soon(2, 13), Location="Bistro")
    report = world.sync()
    assert report.counts["crm_created"] == 1, dict(report.counts)
    [imported] = world.all()
    assert (imported.subject, imported.location, imported.owner) == ("Lunch with Marek", "Bistro", OWNER)
    assert imported.start == soon(2, 12)
    assert idle(world)
    assert len(outlook.items()) == 1


def test_edits_on_each_side_reach_the_other(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(meeting("e1", "Kick-off"), meeting("e2", "Review", days=4))
    world.sync()
    world.save(meeting("e1", "Kick-off (agenda attached)"))
    outlook.edit(outlook.by_crm_id("e2"), Location="Room 4.12")
    report = world.sync()
    assert report.counts["remote_updated"] == 1 and report.counts["crm_updated"] == 1, dict(report.counts)
    assert outlook.by_crm_id("e1").text("Subject") == "Kick-off (agenda attached)"
    assert (world.get("e2").location, world.get("e2").subject) == ("Room 4.12", "Review")
    assert idle(world)


def test_deletions_on_each_side_reach_the_other(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(meeting("d1"), meeting("d2", days=4))
    world.sync()
    world.delete("d1")
    outlook.delete(outlook.by_crm_id("d2"))
    report = world.sync()
    assert report.counts["remote_deleted"] == 1 and report.counts["crm_deleted"] == 1, dict(report.counts)
    assert outlook.items() == [] and world.all() == []


def _edit_both(world: ExchangeWorld, outlook: Outlook) -> None:
    world.save(meeting("k1", "Kick-off", location="Room A"))
    world.sync()
    world.save(meeting("k1", "Kick-off (CRM)", location="Room A"))
    outlook.edit(outlook.by_crm_id("k1"), Subject="Kick-off (Outlook)", Location="Room B")


@pytest.mark.parametrize(
    ("policy", "subject", "location"),
    [
        ("crm-wins", "Kick-off (CRM)", "Room A"),
        ("remote-wins", "Kick-off (Outlook)", "Room B"),
        ("merge", "Kick-off (CRM)", "Room B"),  # the subject clashed (crm wins), the location did not
    ],
)
def test_conflict_policies(world: ExchangeWorld, policy: str, subject: str, location: str) -> None:
    outlook = world.bind(conflict=policy)
    _edit_both(world, outlook)
    report = world.sync()
    assert report.counts["conflicts"] == 1, dict(report.counts)
    crm = world.get("k1")
    item = outlook.by_crm_id("k1")
    assert (crm.subject, crm.location) == (subject, location)
    assert (item.text("Subject"), item.text("Location")) == (subject, location)
    assert world.sql("SELECT policy FROM sync_conflicts") == [(policy,)]
    assert idle(world)


def test_manual_conflicts_wait_for_a_decision(world: ExchangeWorld) -> None:
    outlook = world.bind(conflict="manual")
    _edit_both(world, outlook)
    assert world.sync().counts["conflicts"] == 1
    assert world.get("k1").subject == "Kick-off (CRM)"
    assert outlook.by_crm_id("k1").text("Subject") == "Kick-off (Outlook)"
    assert idle(world)
    [(conflict_id,)] = world.sql("SELECT id FROM sync_conflicts WHERE resolution = 'pending'")

    from syncd.engine.status import resolve_conflict

    with world.app().session() as session:
        resolve_conflict(session, conflict_id, "crm")
    world.sync()
    assert outlook.by_crm_id("k1").text("Subject") == "Kick-off (CRM)"
    assert idle(world)


def test_a_series_with_an_occurrence_moved_and_one_deleted_in_outlook(world: ExchangeWorld) -> None:
    outlook = world.bind()
    first = soon(1, 9)
    world.save(meeting("w1", "Weekly sales meeting", days=1, start=first, end=first + timedelta(hours=1),
                       recurrence=Recurrence("FREQ=WEEKLY;COUNT=6")))
    world.sync()
    master = outlook.by_crm_id("w1")
    second, third = first + timedelta(weeks=1), first + timedelta(weeks=2)
    world.server.modify_occurrence(master.id, second, Start=second + timedelta(hours=3),
                                   End=second + timedelta(hours=4), Location="Room 9")
    world.server.delete_occurrence(master.id, third)
    report = world.sync()
    assert report.counts["crm_updated"] == 1, dict(report.counts)
    recurrence = world.get("w1").recurrence
    assert [d.astimezone(UTC) for d in recurrence.exdates] == [third.astimezone(UTC)]
    [override] = recurrence.overrides
    assert override.recurrence_id.astimezone(UTC) == second.astimezone(UTC)
    assert override.start.astimezone(UTC) == (second + timedelta(hours=3)).astimezone(UTC)
    assert override.location == "Room 9"
    assert idle(world)


def test_a_series_with_exceptions_made_in_the_crm_is_written_occurrence_by_occurrence(world: ExchangeWorld) -> None:
    outlook = world.bind()
    first = soon(1, 9)
    second, third = first + timedelta(weeks=1), first + timedelta(weeks=2)
    from syncd.model import Override

    world.save(meeting("w2", "Weekly", start=first, end=first + timedelta(hours=1), recurrence=Recurrence(
        "FREQ=WEEKLY;COUNT=4", exdates=(third,),
        overrides=(Override(recurrence_id=second, subject="Weekly (customer joins)"),))))
    assert world.sync().counts["remote_created"] == 1
    master = outlook.by_crm_id("w2")
    assert master.deleted_occurrences == {third.astimezone(UTC)}
    [(original, fields)] = master.exceptions.items()
    assert original == second.astimezone(UTC) and fields["Subject"].text == "Weekly (customer joins)"
    assert idle(world)


def test_a_task_completed_in_outlook_is_completed_in_the_crm(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(task("t1", "Send the offer"))
    world.sync()
    outlook.edit(outlook.by_crm_id("t1", "tasks"), Status="Completed")
    world.sync()
    done = world.get("t1")
    assert done.status == "done"
    assert done.completed_at is not None
    assert idle(world)


def test_a_killed_process_between_create_item_and_link_commit_makes_no_duplicate(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(meeting("x1", "Kick-off"), meeting("x2", "Review", days=4))
    config = world.config_file()
    proc: subprocess.Popen[bytes] | None = None

    def kill_after_first_create(record: RequestRecord) -> None:
        if record.operation == "CreateItem" and proc is not None:
            os.kill(proc.pid, signal.SIGKILL)  # Exchange stored the item; syncd never hears of it

    world.server.after_request = kill_after_first_create
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(config), "sync"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.communicate(timeout=60)
    world.server.after_request = None
    assert proc.returncode == -signal.SIGKILL
    # One CreateItem carried the whole batch: both items exist, syncd recorded neither.
    assert len(outlook.items()) == 2
    assert world.sql("SELECT status FROM sync_links") == [("creating",), ("creating",)]

    report = world.sync()
    assert report.result == "ok", report.error
    assert sorted(crm_id(i) for i in outlook.items()) == ["x1", "x2"]
    assert world.sql("SELECT count(*) FROM sync_links WHERE status = 'synced'") == [(2,)]
    assert idle(world)


def test_an_outlook_edit_between_read_and_write_is_re_read_and_decided_again(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(meeting("r1", "Kick-off", location="Room A"))
    world.sync()
    world.save(meeting("r1", "Kick-off (CRM)", location="Room A"))
    item = outlook.by_crm_id("r1")

    def outlook_edits_after_the_sync(record: RequestRecord) -> None:
        if record.operation == "SyncFolderItems":
            world.server.after_request = None
            outlook.edit(item, Location="Room B")  # lands after syncd looked, before it writes

    world.server.after_request = outlook_edits_after_the_sync
    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["races"] == 1, dict(report.counts)
    assert "ErrorIrresolvableConflict" in [c for r in world.server.requests for c in r.response_codes]
    assert (world.get("r1").subject, world.get("r1").location) == ("Kick-off (CRM)", "Room B")
    stored = outlook.by_crm_id("r1")
    assert (stored.text("Subject"), stored.text("Location")) == ("Kick-off (CRM)", "Room B")


def test_throttling_with_a_back_off_hint_is_waited_out(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(meeting("b1"))
    world.server.busy(count=2, back_off_ms=200)
    report = world.sync()
    assert report.result == "ok", report.error
    assert len(outlook.items()) == 1
    assert [r.status for r in world.server.requests[:3]] == [500, 500, 200]
    assert world.server.requests[2].at - world.server.requests[0].at >= 0.4


def test_throttling_beyond_max_backoff_fails_the_pass_in_words(world: ExchangeWorld) -> None:
    world.bind(remote={"max_backoff": 1})
    world.save(meeting("b2"))
    world.server.busy(back_off_ms=60_000)
    report = world.sync()
    assert report.result == "failed"
    assert "throttling" in report.error and "max_backoff = 1 s" in report.error
    world.server.requests.clear()
    assert world.sync().counts["remote_created"] == 1


def test_an_invalid_sync_state_makes_a_full_re_read_without_duplicates(world: ExchangeWorld) -> None:
    outlook = world.bind()
    world.save(meeting("s1", "Kick-off"), task("s2", "Call back"))
    world.sync()
    outlook.create_event("Made in Outlook", soon(2, 15), soon(2, 16))
    gone = outlook.by_crm_id("s1")
    world.server.invalidate_sync_states(OWNER, "calendar")
    world.server.invalidate_sync_states(OWNER, "tasks")
    outlook.delete(gone)
    report = world.sync()
    assert report.result == "ok", report.error
    assert (report.counts["crm_created"], report.counts["crm_deleted"]) == (1, 1), dict(report.counts)
    assert sorted(a.subject for a in world.all()) == ["Call back", "Made in Outlook"]
    assert len(outlook.items()) == 1 and len(outlook.items("tasks")) == 1
    assert idle(world)


def test_a_401_on_one_binding_leaves_the_other_syncing(world: ExchangeWorld) -> None:
    world.bind("anna")
    bobs = world.bind("bob", owner=BOB)
    world.save(meeting("c1", "Anna's"), meeting("c2", "Bob's", owner=BOB))
    world.server.reject_login(OWNER)
    anna, bob = world.sync("anna"), world.sync("bob")
    assert anna.result == "failed"
    assert f"refused the credentials of {OWNER} (HTTP 401)" in anna.error
    assert bob.result == "ok" and [i.text("Subject") for i in bobs.items()] == ["Bob's"]
    world.server.reject_login(OWNER, False)
    assert world.sync("anna").counts["remote_created"] == 1


def test_invitations_are_not_sent_unless_asked_for(world: ExchangeWorld) -> None:
    world.bind("anna")
    world.bind("bob", owner=BOB, remote={"send_invitations": True})
    guest = Participant(ParticipantKind.CONTACT, "guest@example.org", "Guest")
    world.save(meeting("i1", "Quiet", participants=(guest,)), meeting("i2", "Loud", owner=BOB, participants=(guest,)))
    world.sync("anna")
    world.sync("bob")
    assert world.server.mailbox(OWNER).sent == []
    assert {r.attributes.get("SendMeetingInvitations") for r in world.server.requests
            if r.operation == "CreateItem" and r.login == OWNER} == {"SendToNone"}
    [sent] = world.server.mailbox(BOB).sent
    assert (sent.kind, sent.recipients) == ("invitation", ("guest@example.org",))


def test_impersonation_by_a_service_account_works(world: ExchangeWorld) -> None:
    world.server.add_service_account("svc-syncd", "svc-Pa55", can_impersonate=True)
    outlook = world.bind(remote={"username": "svc-syncd", "password": "svc-Pa55", "access_type": "impersonation"})
    world.save(meeting("m1", "Kick-off"))
    assert world.sync().result == "ok"
    assert outlook.subjects() == ["Kick-off"]
    assert {(r.login, r.impersonated) for r in world.server.requests} == {("svc-syncd", OWNER)}


def test_secrets_never_reach_the_log_even_with_exchangelib_debug_logging(world: ExchangeWorld) -> None:
    from syncd import logging as log_setup

    world.bind()
    world.save(meeting("l1"))
    root, ews_logger = logging.getLogger(), logging.getLogger("exchangelib")
    saved = (root.handlers[:], root.level, ews_logger.level)
    buffer = io.StringIO()
    try:
        log_setup.configure("debug", "json", stream=buffer)
        log_setup.register_secrets(world.config().secrets())
        ews_logger.setLevel(logging.DEBUG)
        assert world.sync().result == "ok"
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        ews_logger.setLevel(saved[2])
    text = buffer.getvalue()
    assert "Authorization" in text and "CreateItem" in text  # exchangelib did log its requests
    assert PASSWORD not in text
    assert base64.b64encode(f"{OWNER}:{PASSWORD}".encode()).decode() not in text


def _check(world: ExchangeWorld) -> tuple[int, str]:
    from syncd.cli import main

    result = CliRunner().invoke(main, ["--config", str(world.config_file()), "check"])
    return result.exit_code, result.output


def test_check_tells_an_exchange_admin_what_is_wrong(world: ExchangeWorld) -> None:
    world.bind("anna")
    world.server.add_service_account("svc-plain", "svc-Pa55")
    world.bind("bob", owner=BOB, remote={"username": "svc-plain", "password": "svc-Pa55",
                                         "access_type": "impersonation"})
    code, output = _check(world)
    assert code == 1
    assert "anna: ok" in output
    assert "bob: FAILING: svc-plain may not impersonate bob@example.com" in output
    assert "lacks the ApplicationImpersonation role" in output
    world.server.reject_login(OWNER)
    code, output = _check(world)
    assert f"anna: FAILING: the EWS endpoint {world.server.url} refused the credentials of {OWNER} (HTTP 401)" in output
    assert PASSWORD not in output


def test_check_names_a_missing_delegate_grant(world: ExchangeWorld) -> None:
    world.server.add_mailbox(BOB, PASSWORD)
    world.bind(remote={"username": BOB})  # Bob's login on Anna's mailbox, without a grant
    code, output = _check(world)
    assert code == 1
    assert f"{BOB} has no access to the mailbox {OWNER} (ErrorAccessDenied)" in output
    world.server.grant_delegate(OWNER, BOB)
    code, output = _check(world)
    assert code == 0 and "anna: ok" in output


def test_a_cancelled_occurrence_is_free_in_outlook_and_one_cancelled_there_is_cancelled_in_the_crm(
    world: ExchangeWorld,
) -> None:
    from syncd.model import Override

    outlook = world.bind()
    first = soon(1, 9)
    second, third = first + timedelta(weeks=1), first + timedelta(weeks=2)
    world.save(meeting("x1", "Weekly", start=first, end=first + timedelta(hours=1), recurrence=Recurrence(
        "FREQ=WEEKLY;COUNT=4", overrides=(Override(recurrence_id=second, status="cancelled"),))))
    assert world.sync().counts["remote_created"] == 1
    master = outlook.by_crm_id("x1")
    [(original, fields)] = master.exceptions.items()
    # Still on the calendar (Exchange has no cancelled state a CRM can set on one occurrence), but free.
    assert original == second.astimezone(UTC) and fields["LegacyFreeBusyStatus"].text == "Free"
    assert master.text("LegacyFreeBusyStatus") == "Busy"
    assert idle(world)
    [kept] = world.get("x1").recurrence.overrides
    assert (kept.recurrence_id.astimezone(UTC), kept.status) == (second.astimezone(UTC), "cancelled")

    # The organizer cancels the third occurrence: Exchange marks it cancelled.
    world.server.modify_occurrence(master.id, third, IsCancelled="true", LegacyFreeBusyStatus="Free")
    report = world.sync()
    assert report.counts["crm_updated"] == 1, dict(report.counts)
    statuses = {o.recurrence_id.astimezone(UTC): o.status for o in world.get("x1").recurrence.overrides}
    assert statuses == {second.astimezone(UTC): "cancelled", third.astimezone(UTC): "cancelled"}
    assert world.get("x1").status == "planned"
    assert idle(world)


def test_one_occurrences_privacy_and_free_busy_sync_both_ways(world: ExchangeWorld) -> None:
    """Made private and free in Outlook, one occurrence is so in the CRM; the CRM then makes it confidential,
    and Exchange's occurrence shows that (the series stays normal and busy)."""
    outlook = world.bind()
    first = soon(1, 9)
    world.save(meeting("w3", "Weekly review", days=1, start=first, end=first + timedelta(hours=1),
                       recurrence=Recurrence("FREQ=WEEKLY;COUNT=4")))
    world.sync()
    second = first + timedelta(weeks=1)
    world.server.modify_occurrence(outlook.by_crm_id("w3").id, second, Sensitivity="Private",
                                   LegacyFreeBusyStatus="Free")
    assert world.sync().counts["crm_updated"] == 1
    series = world.get("w3")
    assert series is not None and series.recurrence is not None
    [override] = series.recurrence.overrides
    assert (override.sensitivity, override.show_as) == (Sensitivity.PRIVATE, ShowAs.FREE)

    changed = dataclasses.replace(override, sensitivity=Sensitivity.CONFIDENTIAL)
    world.save(series.replace(recurrence=dataclasses.replace(series.recurrence, overrides=(changed,))))
    assert world.sync().counts["remote_updated"] == 1
    master = outlook.by_crm_id("w3")
    own = master.exceptions[second.astimezone(UTC)]
    assert (own["Sensitivity"].text, own["LegacyFreeBusyStatus"].text) == ("Confidential", "Free")
    assert (master.text("Sensitivity"), master.text("LegacyFreeBusyStatus")) == ("Normal", "Busy")
    assert idle(world)
