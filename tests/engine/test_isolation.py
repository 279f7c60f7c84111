"""No single item stops a binding: whatever one activity or calendar item holds is recorded against it,
and the pass goes on with the others and saves its state. Against a real Radicale."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from world import OWNER, World, meeting, soon, uid

from syncd import logging as log_setup
from syncd.engine import runner as runner_module
from syncd.engine.isolation import MAX_BACKOFF, Isolation, next_attempt
from syncd.errors import ItemError, RemoteError
from syncd.model import Activity, Kind

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "activities.jsonl"


def run_cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", "--config", str(world.config_file()), *args],
                          check=False, capture_output=True, text=True, timeout=120)


def test_the_readme_example_file_syncs_both_ways(world: World) -> None:
    """The README's own sample activities (a participant without e-mail beside others of one kind,
    Hebrew and Polish text, a series with an exception) reach the calendar, and a second pass is quiet."""
    phone = world.bind(past_days=3650, future_days=3650)
    piotr = world.bind("piotr", owner="piotr@example.com", past_days=3650, future_days=3650)
    imported = run_cli(world, "activities", "import", str(EXAMPLES))
    assert imported.returncode == 0, imported.stderr
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines() if line.strip()]
    synced = {r["id"] for r in rows if r["kind"] in ("appointment", "call", "task")}

    for name, calendar, owner in (("anna", phone, OWNER), ("piotr", piotr, "piotr@example.com")):
        report = world.sync(name)
        assert report.result == "ok" and not report.errors, (name, report.error, report.errors)
        mine = {
            r["id"] for r in rows if r["id"] in synced
            and (r["owner"] == owner or any(p.get("email") == owner and p.get("kind") == "user"
                                            for p in r.get("participants", [])))
        }
        assert set(calendar.items()) == {uid(i) for i in mine}, name
        again = world.sync(name)
        assert again.result == "ok" and not again.errors and again.counts["remote_updated"] == 0, again.counts
    gesher = next(r for r in rows if r["id"] == "ACT-1005")
    assert world.get("ACT-1005").subject == gesher["subject"]


def test_bad_crm_rows_are_item_errors_and_the_rest_syncs(world: World) -> None:
    """Rows the CRM wrote with its own SQL: an end before the start, an unknown zone, a broken rule.
    Each is an error of that activity; the others sync; fixed, it syncs too."""
    bad_rows_scenario(world)


@pytest.mark.postgres
def test_bad_crm_rows_on_postgresql(pg_world: World) -> None:
    bad_rows_scenario(pg_world)


def bad_rows_scenario(world: World) -> None:
    phone = world.bind()
    world.save(meeting("good-1"), meeting("bad-end"), meeting("bad-zone"), meeting("bad-rule"),
               meeting("good-2", days=5))
    world.sql("UPDATE activities SET end_at = start_at - INTERVAL '2 hours' WHERE id = 'bad-end'"
              if world.store_url.startswith("postgresql") else
              "UPDATE activities SET end_at = :e WHERE id = 'bad-end'",
              e=(soon(3) - timedelta(hours=2)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
    world.sql("UPDATE activities SET timezone = 'Mars/Olympus_Mons' WHERE id = 'bad-zone'")
    world.sql("UPDATE activities SET rrule = 'FREQ=FORTNIGHTLY;BYDAY=XX' WHERE id = 'bad-rule'")

    report = world.sync()
    assert report.result == "ok", report.error
    assert report.partial
    assert {e.split(":")[0] for e in report.errors} == {"bad-end", "bad-zone", "bad-rule"}
    assert set(phone.items()) == {uid("good-1"), uid("good-2")}
    # A later pass is not stopped either, and does not spend requests on the broken items.
    again = world.sync()
    assert again.result == "ok" and set(phone.items()) == {uid("good-1"), uid("good-2")}

    status = run_cli(world, "status", "--binding", "anna")
    assert status.returncode == 0, status.stderr
    assert "3 items in error" in status.stdout
    for key in ("bad-end", "bad-zone", "bad-rule"):
        assert f"item {key}:" in status.stdout
    assert "Mars/Olympus_Mons" in status.stdout

    # The CRM fixes its rows: the activities sync and leave the error list.
    world.sql("UPDATE activities SET end_at = NULL, timezone = 'Europe/Amsterdam', rrule = NULL "
              "WHERE id IN ('bad-end', 'bad-zone', 'bad-rule')")
    fixed = world.sync()
    assert fixed.result == "ok" and not fixed.errors, fixed.errors
    assert set(phone.items()) == {uid(i) for i in ("good-1", "good-2", "bad-end", "bad-zone", "bad-rule")}
    assert fixed.items_in_error == 0


def test_a_linked_activity_whose_row_breaks_is_not_taken_as_deleted(world: World) -> None:
    phone = world.bind()
    world.save(meeting("kept", "Quarterly review"))
    world.sync()
    world.sql("UPDATE activities SET timezone = 'Not/A_Zone', subject = 'Quarterly review (moved)' WHERE id = 'kept'")
    report = world.sync()
    assert report.result == "ok" and report.errors and report.errors[0].startswith("kept:")
    assert set(phone.items()) == {uid("kept")}
    assert str(phone.items()[uid("kept")].walk("VEVENT")[0]["SUMMARY"]) == "Quarterly review"
    world.sql("UPDATE activities SET timezone = 'Europe/Amsterdam' WHERE id = 'kept'")
    world.sync()
    assert str(phone.items()[uid("kept")].walk("VEVENT")[0]["SUMMARY"]) == "Quarterly review (moved)"


def test_unreadable_calendar_items_cost_only_themselves(world: World) -> None:
    """A calendar item syncd cannot read (here: a zone nobody defines) is an error of that item; the
    phone's good items come in, and the CRM's go out."""
    phone = world.bind()
    world.save(meeting("crm-1"))
    phone.create_event("good@phone", "Lunch", soon(2, 12))
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:zone@phone\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Nowhere/Land:{soon(4):%Y%m%dT%H%M%S}\r\n"
        "DURATION:PT1H\r\nSUMMARY:Where?\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    assert phone.put("zone@phone", body) == 201
    report = world.sync()
    assert report.result == "ok", report.error
    assert {a.subject for a in world.all()} == {"Kick-off", "Lunch"}
    assert uid("crm-1") in phone.items()
    [error] = report.errors
    assert error.startswith("remote:") and "zone@phone" in error and "'Nowhere/Land' is neither known" in error
    assert world.sync().result == "ok"


def test_an_unexpected_exception_in_one_item_is_logged_with_its_traceback_and_costs_that_item(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (here: the window check failing for one activity) is isolated like bad data, and
    reported at error level with the traceback a developer needs."""
    phone = world.bind()
    world.save(meeting("fine"), meeting("trips-a-bug"))
    real = runner_module.in_window

    def in_window(activity: Activity, start: datetime, end: datetime) -> bool:
        if activity.id == "trips-a-bug":
            raise KeyError("simulated bug")
        return real(activity, start, end)

    monkeypatch.setattr(runner_module, "in_window", in_window)
    stream = io.StringIO()
    log_setup.configure("info", "json", stream)
    report = world.sync()
    assert report.result == "ok"
    assert report.errors == ["trips-a-bug: internal error while gathering: KeyError: 'simulated bug'"]
    assert [f.bug for f in report.faults] == [True]
    assert set(phone.items()) == {uid("fine")}
    [record] = [json.loads(line) for line in stream.getvalue().splitlines()
                if json.loads(line)["event"] == "item failed with an internal error"]
    assert record["level"] == "error" and record["item"] == "trips-a-bug"
    assert "Traceback" in record["exception"] and "simulated bug" in record["exception"]


def test_an_item_in_error_backs_off_and_is_retried_at_once_when_it_changes(world: World) -> None:
    phone = world.bind()
    world.save(meeting("stuck"))
    world.sql("UPDATE activities SET timezone = 'Nowhere/Land' WHERE id = 'stuck'")
    t0 = datetime.now(UTC)
    clock = {"now": t0}

    def now() -> datetime:
        return clock["now"]

    assert world.sync(clock=now).errors  # first failure
    assert world.sync(clock=now).errors  # retried at once the next pass: the second failure
    third = world.sync(clock=now)
    assert not third.errors and third.items_in_error == 1  # backing off: not even looked at
    clock["now"] = t0 + timedelta(minutes=2)
    assert world.sync(clock=now).errors  # due again
    # A change on the CRM side brings it back at once, whatever the back-off says.
    world.sql("UPDATE activities SET timezone = 'Europe/Amsterdam' WHERE id = 'stuck'")
    fixed = world.sync(clock=now)
    assert not fixed.errors and fixed.items_in_error == 0
    assert uid("stuck") in phone.items()


def test_back_off_grows_to_a_cap() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    waits = [next_attempt(n, t) - t for n in range(1, 30)]
    assert waits[0] == timedelta(0)
    assert waits == sorted(waits)
    assert waits[-1] == MAX_BACKOFF


def test_what_concerns_the_whole_binding_is_not_swallowed() -> None:
    iso = Isolation("b", store_failure=lambda exc: isinstance(exc, ConnectionResetError))
    with pytest.raises(RemoteError), iso.guard("a", "writing"):
        raise RemoteError("server down")
    with pytest.raises(ConnectionResetError), iso.guard("a", "writing"):
        raise ConnectionResetError("store gone")
    with pytest.raises(KeyboardInterrupt), iso.guard("a", "writing"):
        raise KeyboardInterrupt
    with iso.guard("a", "writing"):
        raise ItemError("a", "DTSTART", "bad")
    assert iso.faults["a"].reason == "a: DTSTART: bad" and not iso.faults["a"].bug


def test_sync_exits_with_its_own_code_when_items_failed(world: World) -> None:
    world.bind()
    world.save(meeting("ok-1"), meeting("broken"))
    world.sql("UPDATE activities SET rrule = 'FREQ=NEVER' WHERE id = 'broken'")
    result = run_cli(world, "sync")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "anna: ok with item errors" in result.stdout and "item: broken:" in result.stdout
    world.sql("UPDATE activities SET rrule = NULL WHERE id = 'broken'")
    assert run_cli(world, "sync").returncode == 0


def test_activities_entering_the_window_are_synced_when_time_brings_them_in(world: World) -> None:
    """An activity beyond future_days reaches the calendar once time brings it into the window, and
    a wider future_days brings in what it now covers; without searching the whole CRM each pass."""
    phone = world.bind(future_days=30)
    start = datetime.now(UTC).replace(microsecond=0)
    world.save(meeting("near", days=3), meeting("far", days=45), meeting("very-far", days=200))
    world.sync(clock=lambda: start)
    assert set(phone.items()) == {uid("near")}
    # Twenty days later "far" is 25 days ahead: inside the 30-day window.
    report = world.sync(clock=lambda: start + timedelta(days=20))
    assert report.result == "ok" and report.counts["remote_created"] == 1
    assert set(phone.items()) == {uid("near"), uid("far")}
    # A wider window takes in "very-far" at once.
    world.sync(clock=lambda: start + timedelta(days=20), future_days=365)
    assert set(phone.items()) == {uid("near"), uid("far"), uid("very-far")}


def test_a_task_due_later_enters_the_window_too(world: World) -> None:
    phone = world.bind(future_days=10)
    start = datetime.now(UTC).replace(microsecond=0)
    due = (start + timedelta(days=15)).replace(hour=15, minute=0, second=0)
    world.save(Activity(id="later-task", kind=Kind.TASK, subject="Renew contract", owner=OWNER, due=due,
                        timezone="Europe/Amsterdam", status="open"))
    world.sync(clock=lambda: start)
    assert uid("later-task") not in phone.items()
    world.sync(clock=lambda: start + timedelta(days=6))
    assert uid("later-task") in phone.items()


def test_a_runaway_rule_on_the_calendar_costs_what_the_window_holds(world: World) -> None:
    """One event repeating every second, a million times, beside ordinary items: the pass imports it
    quickly (its window check stops at its first occurrence in the window), and the next is quiet."""
    phone = world.bind()
    world.save(meeting("crm-2"))
    start = soon(1, 9).astimezone(UTC)
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:runaway@phone\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
        "DURATION:PT1S\r\nSUMMARY:Every second\r\nRRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    assert phone.put("runaway@phone", body) == 201
    phone.create_event("fine@phone", "Lunch", soon(2, 12))
    report = world.sync()
    assert report.result == "ok", report.error
    assert report.seconds < 60  # a guard against hanging, not a speed target (bench/runaway.py has those)
    assert {a.subject for a in world.all()} == {"Kick-off", "Lunch", "Every second"}
    assert uid("crm-2") in phone.items()
    again = world.sync()
    assert again.result == "ok" and not again.errors and sum(again.counts.values()) == 0


def test_a_binding_pointed_at_another_calendar_is_refused_until_told_what_to_do(world: World) -> None:
    """Changing a binding's calendar URL must not keep writing into the old calendar, nor take the
    new one's missing items for deletions: the pass is refused with advice; `syncd forget` starts over."""
    old = world.bind()
    world.save(meeting("m1"), meeting("m2", days=4))
    assert world.sync().result == "ok" and set(old.items()) == {uid("m1"), uid("m2")}
    new_url = world.calendar()
    world.bindings[0]["remote"]["url"] = new_url
    world.save(meeting("m1", "Kick-off (moved)"))
    refused = world.sync()
    assert refused.result == "stopped"
    assert "synced items are in" in refused.error and "syncd forget --binding anna" in refused.error
    assert str(old.items()[uid("m1")].walk("VEVENT")[0]["SUMMARY"]) == "Kick-off"  # the old one untouched
    assert len(world.all()) == 2  # nothing deleted in the CRM
    forgot = run_cli(world, "forget", "--binding", "anna")
    assert forgot.returncode == 0 and "forgot 2 links" in forgot.stdout, forgot.stdout + forgot.stderr
    report = world.sync()
    assert report.result == "ok" and report.counts["remote_created"] == 2
    from world import Phone

    new = Phone(new_url.replace(world.proxy.url, world.radicale.url))
    assert str(new.items()[uid("m1")].walk("VEVENT")[0]["SUMMARY"]) == "Kick-off (moved)"
