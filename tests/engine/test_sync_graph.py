"""Two-way sync of a CRM store with Exchange Online through Microsoft Graph (the Graph test server),
scenario by scenario: the scenarios of test_sync_exchange.py, through the engine and the CLI."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from graph_fixture import APP_ID, SECRET, graph_fixture  # noqa: F401  (the fixture `graph`)
from graph_world import GraphWorld, crm_id, world  # noqa: F401  (the fixture `world`)
from world import BOB, OWNER, idle, meeting, soon, task

from syncd.mapping import graph_props as gp
from syncd.model import Kind, Override, Participant, ParticipantKind, Recurrence, Sensitivity, ShowAs


def test_initial_push_puts_appointments_in_the_calendar_and_tasks_in_to_do(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(meeting("a1", "Kick-off"), meeting("a2", "Review", days=4), task("t1", "Send the offer"))
    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["remote_created"] == 3
    assert outlook.subjects() == ["Kick-off", "Review"]
    [todo] = outlook.tasks()
    assert (todo["title"], crm_id(todo)) == ("Send the offer", "t1")
    event = outlook.by_crm_id("a1")
    assert gp.instant(event["start"]) == soon(3).astimezone(UTC)
    assert event["originalStartTimeZone"] in ("Europe/Amsterdam", "W. Europe Standard Time")


def test_a_second_pass_sends_one_delta_request_per_folder_and_changes_nothing(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(*(meeting(f"n{i}", f"Meeting {i}", days=i + 1) for i in range(4)), task("t1", "Call back"))
    world.sync()
    world.sync()  # sees its own writes once, by changeKey: nothing to read
    before = {e["id"]: e["changeKey"] for e in outlook.events()}
    world.server.requests.clear()
    assert idle(world)
    assert [m for m, _ in world.app_requests()] == ["GET", "GET"]
    assert [p.rsplit("/", 1)[-1] for _, p in world.app_requests()] == ["delta", "delta"]
    assert len(world.server.requests) == 2  # no token request either: MSAL's cache outlives the pass
    assert {e["id"]: e["changeKey"] for e in outlook.events()} == before


def test_items_created_in_outlook_and_in_to_do_become_crm_activities(world: GraphWorld) -> None:
    outlook = world.bind()
    world.sync()
    outlook.create_event("Lunch with Marek", soon(2, 12), soon(2, 13), location={"displayName": "Bistro"})
    outlook.http.post(f"todo/lists/{outlook.list_id()}/tasks", json={"title": "Order flowers"})
    report = world.sync()
    assert report.counts["crm_created"] == 2, (dict(report.counts), report.errors)
    lunch = next(a for a in world.all() if a.kind == Kind.APPOINTMENT)
    assert (lunch.subject, lunch.location, lunch.start) == ("Lunch with Marek", "Bistro", soon(2, 12))
    assert [a.subject for a in world.all() if a.kind == Kind.TASK] == ["Order flowers"]
    assert idle(world)
    assert len(outlook.events()) == 1 and len(outlook.tasks()) == 1


def test_edits_on_each_side_reach_the_other(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(meeting("e1", "Kick-off"), meeting("e2", "Review", days=4))
    world.sync()
    world.save(meeting("e1", "Kick-off (agenda attached)"))
    outlook.edit(outlook.by_crm_id("e2"), location={"displayName": "Room 4.12"})
    report = world.sync()
    assert report.counts["remote_updated"] == 1 and report.counts["crm_updated"] == 1, dict(report.counts)
    assert outlook.by_crm_id("e1")["subject"] == "Kick-off (agenda attached)"
    assert (world.get("e2").location, world.get("e2").subject) == ("Room 4.12", "Review")
    assert idle(world)


def test_deletions_on_each_side_reach_the_other(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(meeting("d1"), meeting("d2", days=4), task("d3", "Call back"))
    world.sync()
    world.delete("d1")
    outlook.delete(outlook.by_crm_id("d2"))
    outlook.delete(outlook.by_crm_id("d3"))
    report = world.sync()
    assert report.counts["remote_deleted"] == 1 and report.counts["crm_deleted"] == 2, dict(report.counts)
    assert outlook.events() == [] and outlook.tasks() == [] and world.all() == []


@pytest.mark.parametrize(
    ("policy", "subject", "location"),
    [
        ("crm-wins", "Kick-off (CRM)", "Room A"),
        ("remote-wins", "Kick-off (Outlook)", "Room B"),
        ("merge", "Kick-off (CRM)", "Room B"),  # the subject clashed (crm wins), the location did not
    ],
)
def test_conflict_policies(world: GraphWorld, policy: str, subject: str, location: str) -> None:
    outlook = world.bind(conflict=policy)
    world.save(meeting("k1", "Kick-off", location="Room A"))
    world.sync()
    world.save(meeting("k1", "Kick-off (CRM)", location="Room A"))
    outlook.edit(outlook.by_crm_id("k1"), subject="Kick-off (Outlook)", location={"displayName": "Room B"})
    report = world.sync()
    assert report.counts["conflicts"] == 1, dict(report.counts)
    crm, item = world.get("k1"), outlook.by_crm_id("k1")
    assert (crm.subject, crm.location) == (subject, location)
    assert (item["subject"], item["location"]["displayName"]) == (subject, location)
    assert idle(world)


def test_a_series_with_an_occurrence_moved_and_one_cancelled_in_outlook(world: GraphWorld) -> None:
    outlook = world.bind()
    first = soon(1, 9)
    world.save(meeting("w1", "Weekly sales meeting", start=first, end=first + timedelta(hours=1),
                       recurrence=Recurrence("FREQ=WEEKLY;COUNT=6")))
    world.sync()
    master = outlook.by_crm_id("w1")
    second, third = first + timedelta(weeks=1), first + timedelta(weeks=2)
    occurrences = {gp.instant(o["originalStart"]): o for o in outlook.occurrences(master, first, third + timedelta(1))}
    moved = occurrences[second.astimezone(UTC)]
    later = second + timedelta(hours=3)
    outlook.edit(moved, start=gp.dtz(later, "UTC"), end=gp.dtz(later + timedelta(hours=1), "UTC"),
                 location={"displayName": "Room 9"})
    outlook.http.delete(f"events/{occurrences[third.astimezone(UTC)]['id']}")
    report = world.sync()
    assert report.counts["crm_updated"] == 1, (dict(report.counts), report.errors)
    recurrence = world.get("w1").recurrence
    assert [d.astimezone(UTC) for d in recurrence.exdates] == [third.astimezone(UTC)]
    [override] = recurrence.overrides
    assert override.recurrence_id.astimezone(UTC) == second.astimezone(UTC)
    assert override.start.astimezone(UTC) == (second + timedelta(hours=3)).astimezone(UTC)
    assert override.location == "Room 9"
    assert idle(world)


def test_an_occurrence_renamed_in_outlook_keeps_its_own_time(world: GraphWorld) -> None:
    outlook = world.bind()
    first = soon(1, 9)
    world.save(meeting("w2", "Stand-up", start=first, end=first + timedelta(minutes=15),
                       recurrence=Recurrence("FREQ=DAILY;COUNT=4")))
    world.sync()
    master = outlook.by_crm_id("w2")
    second = first + timedelta(days=1)
    occurrences = {gp.instant(o["originalStart"]): o
                   for o in outlook.occurrences(master, first, second + timedelta(hours=1))}
    outlook.edit(occurrences[second.astimezone(UTC)], subject="Stand-up with the board")
    report = world.sync()
    assert report.counts["crm_updated"] == 1, (dict(report.counts), report.errors)
    [override] = world.get("w2").recurrence.overrides
    assert override.subject == "Stand-up with the board"
    assert override.start is None or override.start.astimezone(UTC) == second.astimezone(UTC)
    assert idle(world)


def test_a_task_completed_in_to_do_is_completed_in_the_crm(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(task("t1", "Send the offer"))
    world.sync()
    outlook.edit(outlook.by_crm_id("t1"), status="completed")
    world.sync()
    done = world.get("t1")
    assert done.status == "done" and done.completed_at is not None
    assert idle(world)


def test_a_create_whose_answer_is_lost_makes_no_duplicate(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(meeting("x1", "Kick-off"))
    world.server.fault("POST", r"/events$", status=201, lose_answer=True)
    report = world.sync()
    assert report.result == "ok", report.error
    posts = [r for r in world.server.requests if r.method == "POST" and r.path.endswith("/events")]
    assert len(posts) == 2  # sent again with the same transactionId: Graph answered with the first event
    assert [crm_id(e) for e in outlook.events()] == ["x1"]
    assert idle(world)


def test_a_stale_change_key_is_re_read_and_decided_again(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(meeting("r1", "Kick-off", location="Room A"))
    world.sync()
    world.save(meeting("r1", "Kick-off (CRM)", location="Room A"))
    world.server.fault("PATCH", r"/events/", status=412, body={"error": {
        "code": "ErrorIrresolvableConflict", "message": "The send or update operation could not be performed "
        "because the change key passed in the request does not match the current change key for the item."}})
    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["races"] == 1, dict(report.counts)
    assert outlook.by_crm_id("r1")["subject"] == "Kick-off (CRM)"
    assert idle(world)


def test_an_outlook_event_syncd_cannot_read_costs_only_itself(world: GraphWorld) -> None:
    outlook = world.bind()
    world.sync()
    first = soon(1, 9)
    outlook.create_event("Odd series", first, first + timedelta(hours=1), recurrence={
        "pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "index": "first"},
        "range": {"type": "noEnd", "startDate": first.date().isoformat()}})
    outlook.create_event("Plain", soon(2), soon(2, 11))
    report = world.sync()
    assert report.counts["crm_created"] == 1, (dict(report.counts), report.errors)
    assert [a.subject for a in world.all()] == ["Plain"]
    assert any("cannot be expressed exactly" in str(e) for e in report.errors), report.errors


def test_throttling_with_retry_after_is_waited_out(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(meeting("b1"))
    world.server.fault("POST", r"/events$", status=429, headers={"Retry-After": "1"})
    started = time.monotonic()
    report = world.sync()
    assert report.result == "ok", report.error
    assert time.monotonic() - started >= 1
    assert [crm_id(e) for e in outlook.events()] == ["b1"]
    assert [r.status for r in world.server.requests if r.method == "POST" and r.path.endswith("/events")] == [429, 201]


def test_throttling_beyond_max_backoff_fails_the_pass_in_words(world: GraphWorld) -> None:
    world.bind(remote={"max_backoff": 1})
    world.save(meeting("b2"))
    world.server.fault("GET", r"/delta$", status=429, headers={"Retry-After": "60"})
    report = world.sync()
    assert report.result == "failed"
    assert "throttling" in report.error and "max_backoff = 1 s" in report.error
    assert world.sync().counts["remote_created"] == 1


def test_an_expired_delta_token_makes_a_full_re_read_without_duplicates(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(meeting("s1", "Kick-off"), task("s2", "Call back"))
    world.sync()
    outlook.create_event("Made in Outlook", soon(2, 15), soon(2, 16))
    outlook.delete(outlook.by_crm_id("s1"))
    world.server.expire_delta_tokens()
    report = world.sync()
    assert report.result == "ok", report.error
    assert (report.counts["crm_created"], report.counts["crm_deleted"]) == (1, 1), dict(report.counts)
    assert sorted(a.subject for a in world.all()) == ["Call back", "Made in Outlook"]
    assert len(outlook.events()) == 1 and len(outlook.tasks()) == 1
    assert idle(world)


def test_a_401_on_one_binding_leaves_the_other_syncing(world: GraphWorld) -> None:
    world.bind("anna")
    bobs = world.bind("bob", owner=BOB)
    world.save(meeting("c1", "Anna's"), meeting("c2", "Bob's", owner=BOB))
    world.server.fault(None, rf"/users/{OWNER}/", status=401, body={"error": {
        "code": "InvalidAuthenticationToken", "message": "Access token has expired or is not yet valid."}}, times=4)
    anna, bob = world.sync("anna"), world.sync("bob")
    assert anna.result == "failed"
    assert f"refused the token of app {APP_ID} (401 InvalidAuthenticationToken)" in anna.error
    assert bob.result == "ok" and bobs.subjects() == ["Bob's"]
    world.server.clear_faults()
    assert world.sync("anna").counts["remote_created"] == 1


def test_a_first_sync_on_a_mailbox_with_syncd_made_items_pairs_them(world: GraphWorld) -> None:
    """Items syncd made earlier (through EWS, or a store that was lost) carry the CRM id: paired, not copied."""
    outlook = world.bind()
    world.save(meeting("p1", "Kick-off"), meeting("p2", "Review", days=4))
    for crm in ("p1", "p2"):
        outlook.create_event("Old title " + crm, soon(3), soon(3, 11),
                             singleValueExtendedProperties=[{"id": gp.CRM_ID, "value": crm}])
    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["remote_created"] == 0, dict(report.counts)
    assert sorted(crm_id(e) for e in outlook.events()) == ["p1", "p2"]
    assert world.sql("SELECT count(*) FROM sync_links WHERE status = 'synced'") == [(2,)]
    assert idle(world)


def test_no_invitation_is_mailed_unless_asked_for(world: GraphWorld) -> None:
    outlook = world.bind("anna")
    world.bind("bob", owner=BOB, remote={"send_invitations": True})
    guest = Participant(ParticipantKind.CONTACT, "guest@example.org", "Guest")
    world.save(meeting("i1", "Quiet", participants=(guest,)), meeting("i2", "Loud", owner=BOB, participants=(guest,)))
    world.sync("anna")
    world.sync("bob")
    assert [(i["mailbox"], i["kind"]) for i in world.server.invitations] == [(BOB, "invitation")]
    assert outlook.by_crm_id("i1").get("attendees") in (None, [])
    assert world.get("i1").participants == (guest,)  # carried in syncd's property, back unchanged
    assert idle(world, "anna") and idle(world, "bob")


def _cli(world: GraphWorld, *args: str) -> tuple[int, str]:
    from syncd.cli import main

    result = CliRunner().invoke(main, ["--config", str(world.config_file()), *args])
    return result.exit_code, result.output


def test_the_cli_syncs_a_graph_binding(world: GraphWorld) -> None:
    outlook = world.bind()
    world.save(meeting("cli1", "Kick-off"))
    code, output = _cli(world, "sync")
    assert code == 0, output
    assert outlook.subjects() == ["Kick-off"]


def test_check_tells_an_admin_what_is_wrong(world: GraphWorld) -> None:
    world.bind("anna")
    world.server.add_app("app-narrow", secret="narrow-S3cret", roles=("Calendars.ReadWrite",), mailboxes={OWNER})
    world.bind("bob", owner=BOB, remote={"client_id": "app-narrow", "client_secret": "narrow-S3cret"})
    world.bind("carl", owner=OWNER, remote={"client_secret": "wrong-secret"})
    world.bind("dora", owner=OWNER, remote={"user": "nobody@example.com"})
    code, output = _cli(world, "check")
    assert code == 1
    assert "anna: ok" in output
    assert "bob: FAILING: app app-narrow lacks the application permission Tasks.ReadWrite.All" in output
    assert "may not reach the mailbox bob@example.com" in output and "RBAC for Applications" in output
    assert "carl: FAILING" in output and "AADSTS7000215" in output and "client secret is wrong" in output
    assert "dora: FAILING: Microsoft Graph knows no mailbox nobody@example.com" in output
    assert SECRET not in output and "wrong-secret" not in output


def test_one_occurrences_privacy_and_free_busy_sync_both_ways(world: GraphWorld) -> None:
    """Made private and free in Outlook, one occurrence is so in the CRM; the CRM then makes it confidential,
    and Outlook's occurrence shows that (the series stays normal and busy)."""
    outlook = world.bind()
    first = soon(1, 9)
    world.save(meeting("w3", "Weekly review", start=first, end=first + timedelta(hours=1),
                       recurrence=Recurrence("FREQ=WEEKLY;COUNT=4")))
    world.sync()
    second = first + timedelta(weeks=1)

    def occurrence() -> dict[str, Any]:
        found = outlook.occurrences(outlook.by_crm_id("w3"), first, second + timedelta(hours=2))
        return next(o for o in found if gp.instant(o["originalStart"]) == second.astimezone(UTC))

    outlook.edit(occurrence(), sensitivity="private", showAs="free")
    report = world.sync()
    assert report.counts["crm_updated"] == 1, (dict(report.counts), report.errors)
    series = world.get("w3")
    assert series is not None and series.recurrence is not None
    [override] = series.recurrence.overrides
    assert (override.sensitivity, override.show_as) == (Sensitivity.PRIVATE, ShowAs.FREE)

    changed = dataclasses.replace(override, sensitivity=Sensitivity.CONFIDENTIAL)
    world.save(series.replace(recurrence=dataclasses.replace(series.recurrence, overrides=(changed,))))
    assert world.sync().counts["remote_updated"] == 1
    assert (occurrence()["sensitivity"], occurrence()["showAs"]) == ("confidential", "free")
    master = outlook.by_crm_id("w3")
    assert (master["sensitivity"], master["showAs"]) == ("normal", "busy")
    assert idle(world)


def test_a_cancelled_occurrence_is_free_in_outlook_and_one_cancelled_there_leaves_the_crm_series(
    world: GraphWorld,
) -> None:
    """The CRM's cancelled occurrence shows free (subject unchanged, as through EWS) and reads back cancelled;
    one the organizer cancels in Outlook is removed there (Graph lists it in cancelledOccurrences, as a
    deleted one): the CRM drops it too; one made busy again there is no longer cancelled in the CRM."""
    outlook = world.bind(remote={"send_invitations": True})
    guest = Participant(ParticipantKind.CONTACT, "guest@example.org", "Guest")
    first = soon(1, 9)
    second, third = first + timedelta(weeks=1), first + timedelta(weeks=2)
    world.save(meeting("x1", "Weekly", start=first, end=first + timedelta(hours=1), participants=(guest,),
                       recurrence=Recurrence("FREQ=WEEKLY;COUNT=4",
                                             overrides=(Override(recurrence_id=second, status="cancelled"),))))
    assert world.sync().counts["remote_created"] == 1
    master = outlook.by_crm_id("x1")

    def occurrences() -> dict[Any, dict[str, Any]]:
        found = outlook.occurrences(master, first, third + timedelta(hours=2))
        return {gp.instant(o["originalStart"]): o for o in found}

    shown = occurrences()
    assert [(shown[at]["showAs"], shown[at]["subject"]) for at in sorted(shown)] == [
        ("busy", "Weekly"), ("free", "Weekly"), ("busy", "Weekly")]
    assert master["showAs"] == "busy"
    assert idle(world)
    [kept] = world.get("x1").recurrence.overrides
    assert (kept.recurrence_id.astimezone(UTC), kept.status) == (second.astimezone(UTC), "cancelled")

    outlook.http.post(f"events/{shown[third.astimezone(UTC)]['id']}/cancel", json={"comment": "Holiday"})
    report = world.sync()
    assert report.counts["crm_updated"] == 1, (dict(report.counts), report.errors)
    series = world.get("x1")
    assert [d.astimezone(UTC) for d in series.recurrence.exdates] == [third.astimezone(UTC)]
    assert [(o.recurrence_id.astimezone(UTC), o.status) for o in series.recurrence.overrides] == [
        (second.astimezone(UTC), "cancelled")]
    assert series.status == "planned"
    assert idle(world)

    outlook.edit(occurrences()[second.astimezone(UTC)], showAs="busy")
    report = world.sync()
    assert report.counts["crm_updated"] == 1, (dict(report.counts), report.errors)
    assert world.get("x1").recurrence.overrides == ()  # planned, as its series: nothing of its own left
    assert idle(world)
