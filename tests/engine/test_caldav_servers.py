"""The two-way CalDAV scenarios of tests/engine/test_sync_caldav.py (which runs on Radicale) on the other
real servers the suite starts (tests/caldav_servers.py): Xandikos and Cyrus IMAP. Each test runs once
per server. The servers differ where a user would only notice through syncd (how they refuse a UID or a
forgotten sync token, scheduling, one UID per calendar home), so the same outcome on each is the point.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from caldav_servers import CalDavServer, ServerWorld, caldav_server, caldav_server_pool, server_world  # noqa: F401
from world import master, meeting, soon, task, uid

from syncd.model import Participant, ParticipantKind, Recurrence, Response


@pytest.fixture
def world(tmp_path: Path, caldav_server: CalDavServer) -> Iterator[ServerWorld]:  # noqa: F811
    yield from server_world(tmp_path, caldav_server)


def _idle(world: ServerWorld) -> list[str]:
    """The requests of one pass when nothing changed anywhere, after the pass that sees its own writes."""
    world.sync()
    world.proxy.reset()
    report = world.sync()
    assert report.result == "ok" and sum(report.counts.values()) == 0, (report.error, dict(report.counts))
    return [s.method for s in world.proxy.requests]


def test_push_then_an_idle_pass_costs_one_request(world: ServerWorld) -> None:
    phone = world.bind()
    world.save(meeting("a1", "Kick-off"), meeting("a2", "Review", days=4))
    report = world.sync()
    assert report.result == "ok", (report.error, report.errors)
    assert report.counts["remote_created"] == 2
    items = phone.items()
    assert set(items) == {uid("a1"), uid("a2")}
    assert str(master(items[uid("a1")])["SUMMARY"]) == "Kick-off"
    assert master(items[uid("a1")]).decoded("DTSTART") == soon(3)
    before = {u: c.to_ical() for u, c in items.items()}
    assert _idle(world) == ["REPORT"]
    assert {u: c.to_ical() for u, c in phone.items().items()} == before


def test_pull_an_event_made_on_the_phone(world: ServerWorld) -> None:
    phone = world.bind()
    world.sync()
    phone.create_event("phone-1@example.org", "Lunch with Marek", soon(2, 12))
    report = world.sync()
    assert report.counts["crm_created"] == 1, (dict(report.counts), report.errors)
    [imported] = world.all()
    assert (imported.subject, imported.start) == ("Lunch with Marek", soon(2, 12))
    assert _idle(world) == ["REPORT"]
    assert list(phone.items()) == ["phone-1@example.org"]


def test_edits_and_deletions_on_both_sides(world: ServerWorld) -> None:
    phone = world.bind()
    world.save(meeting("e1", "Kick-off"), meeting("e2", "Review", days=4), meeting("d1"), meeting("d2", days=5))
    world.sync()
    world.save(meeting("e1", "Kick-off (agenda attached)"))
    phone.edit(uid("e2"), location="Room 4.12")
    world.delete("d1")
    phone.delete(uid("d2"))
    report = world.sync()
    assert dict(report.counts) == {"remote_updated": 1, "crm_updated": 1, "remote_deleted": 1, "crm_deleted": 1}, (
        dict(report.counts), report.errors)
    assert set(phone.items()) == {uid("e1"), uid("e2")}
    assert str(master(phone.get(uid("e1"))[0])["SUMMARY"]) == "Kick-off (agenda attached)"
    assert (world.get("e2").location, world.get("e2").subject) == ("Room 4.12", "Review")
    assert sorted(a.id for a in world.all()) == ["e1", "e2"]
    assert _idle(world) == ["REPORT"]


def test_an_edit_on_both_sides_is_a_conflict_settled_by_policy(world: ServerWorld) -> None:
    phone = world.bind(conflict="merge")
    world.save(meeting("k1", "Kick-off", location="Room A"))
    world.sync()
    world.save(meeting("k1", "Kick-off (CRM)", location="Room A"))
    phone.edit(uid("k1"), summary="Kick-off (phone)", location="Room B")
    report = world.sync()
    assert report.counts["conflicts"] == 1, dict(report.counts)
    remote = master(phone.get(uid("k1"))[0])
    assert (world.get("k1").subject, world.get("k1").location) == ("Kick-off (CRM)", "Room B")
    assert (str(remote["SUMMARY"]), str(remote["LOCATION"])) == ("Kick-off (CRM)", "Room B")


def test_a_recurring_series_with_an_occurrence_moved_and_one_deleted_on_the_phone(world: ServerWorld) -> None:
    phone = world.bind()
    first = soon(1, 9)
    world.save(meeting("w1", "Weekly sales meeting", days=1, start=first, end=first + timedelta(hours=1),
                       recurrence=Recurrence("FREQ=WEEKLY;COUNT=6")))
    world.sync()
    assert phone.move_second_and_delete_third(uid("w1"), first) in (200, 204)
    report = world.sync()
    assert report.counts["crm_updated"] == 1, (dict(report.counts), report.errors)
    recurrence = world.get("w1").recurrence
    assert recurrence is not None
    assert [d.astimezone(UTC) for d in recurrence.exdates] == [(first + timedelta(weeks=2)).astimezone(UTC)]
    [override] = recurrence.overrides
    assert override.start.astimezone(UTC) == (first + timedelta(weeks=1, hours=3)).astimezone(UTC)
    assert _idle(world) == ["REPORT"]


def test_a_task_completed_on_the_phone_is_completed_in_the_crm(world: ServerWorld) -> None:
    phone = world.bind()
    world.save(task("t1"))
    world.sync()
    done = datetime.now(UTC).replace(microsecond=0)
    phone.edit(uid("t1"), status="COMPLETED", completed=done, percent_complete=100)
    world.sync()
    completed = world.get("t1")
    assert (completed.status, completed.completed_at) == ("done", done)
    assert _idle(world) == ["REPORT"]


def test_a_participating_users_copy_in_a_second_calendar_of_the_same_account(world: ServerWorld) -> None:
    """Both bindings log in as one account, so the copy lands in a second calendar of one calendar home,
    where a server may allow each UID once (Cyrus: unique-scheduling-object-resource). The copy is there
    and Bob's answer on it comes back."""
    world.bind("anna")
    bobs_phone = world.bind("bob", owner="bob@example.com")
    bob = Participant(ParticipantKind.USER, "bob@example.com", "Bob")
    world.save(meeting("s1", "Customer visit", participants=(bob,)),
               meeting("s2", "Own meeting", owner="bob@example.com"))
    assert world.sync("anna").result == "ok"
    report = world.sync("bob")
    assert (report.result, report.errors) == ("ok", []), report.error
    [copy] = set(bobs_phone.items()) - {uid("s2")}
    cal, etag = bobs_phone.get(copy)
    assert str(master(cal)["SUMMARY"]) == "Customer visit"
    attendees = master(cal)["ATTENDEE"]
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        attendee.params["PARTSTAT"] = "ACCEPTED"
    assert bobs_phone.put(copy, cal, etag) in (200, 204)
    world.sync("bob")
    assert world.get("s1").participants[0].response == Response.ACCEPTED


def test_a_sync_token_the_server_no_longer_knows_means_reading_everything_again(world: ServerWorld) -> None:
    """Each server refuses an unknown token its own way (Radicale and Cyrus 403, Xandikos 412, all with
    DAV:valid-sync-token): syncd lists the collection in full and misses neither deletion nor creation."""
    phone = world.bind()
    world.save(meeting("f1"), meeting("f2", days=4))
    world.sync()
    [(state,)] = world.sql("SELECT remote_state FROM sync_bindings WHERE name = 'anna'")
    stale = json.loads(state)
    for entry in stale["collections"].values():
        # Cyrus's shape of token from another incarnation of the collection (Cyrus reads a token it issued
        # with junk appended as the token itself, so a suffix would not do); unknown to the others.
        entry["token"] = "data:,1-1"
    world.sql("UPDATE sync_bindings SET remote_state = :state WHERE name = 'anna'", state=json.dumps(stale))
    phone.delete(uid("f2"))
    phone.create_event("phone-2@example.org", "Call back", soon(2, 15))
    report = world.sync()
    assert report.result == "ok", report.error
    assert dict(report.counts) == {"crm_deleted": 1, "crm_created": 1}, dict(report.counts)
    assert sorted(a.subject for a in world.all()) == ["Call back", "Kick-off"]
    assert _idle(world) == ["REPORT"]
