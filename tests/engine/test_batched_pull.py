"""A pull writes the CRM in batches (one transaction per hundred items), and a batch keeps the
promises a write per item kept: one item the store refuses costs only that item; a store that fails
or a process that dies in the middle of a batch leaves no activity without its link, and the next
pass finishes the pull without a duplicate. Against a real Radicale, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, timedelta

import pytest
from phone_files import calendar_folder, phone_event
from world import OWNER, World, soon

from syncd.engine import runner

#: Batches of ten (five hundred in use) keep these tests fast; the pull spans three of them.
BATCH_SIZE = 10
N = 2 * BATCH_SIZE + 5
BAD = 6
"""The position of the item the store refuses (inside the first batch)."""


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "STORE_BATCH", BATCH_SIZE)


#: The phone's events each invite a guest: a participant per activity for the pull to write.
GUEST = "ATTENDEE;CN=Guest:mailto:guest@customer.example"


def phone_events(world: World, subjects: dict[int, str] | None = None) -> None:
    """N events a phone made. Written into the calendar's folder as Radicale stores them (as bench/
    does), not by N PUTs, which cost this test a minute on a loaded machine."""
    # Radicale parses a folder's items on its first read of them: a loaded machine needs more than 2 s.
    phone = world.bind(past_days=30, future_days=365, remote={"timeout": 60})
    folder = calendar_folder(world, phone)
    start = soon(1, 9).astimezone(UTC)
    for i in range(N):
        at = start + timedelta(days=i % 200, hours=i % 5)
        subject = (subjects or {}).get(i, f"Visit #{i}")
        (folder / f"e{i:03d}.ics").write_bytes(phone_event(f"e{i:03d}@phone", subject, at, GUEST))


def store_counts(world: World) -> tuple[set[str], set[str]]:
    """The CRM's activities and the binding's links, by activity id."""
    activities = {row[0] for row in world.sql("SELECT id FROM activities")}
    links = {row[0] for row in world.sql("SELECT activity_id FROM sync_links WHERE binding = 'anna'")}
    return activities, links


def refuse_subject(world: World, subject: str) -> None:
    """The CRM's own rule on its table (as a CRM may have): a row with this subject is refused."""
    if world.store_url.startswith("postgresql"):
        world.sql(f"ALTER TABLE activities ADD CONSTRAINT ck_crm_rule CHECK (subject <> '{subject}')")
    else:
        world.sql(f"CREATE TRIGGER crm_rule BEFORE INSERT ON activities WHEN NEW.subject = '{subject}' "
                  "BEGIN SELECT RAISE(ABORT, 'the CRM refuses this subject'); END")


def lift_rule(world: World) -> None:
    if world.store_url.startswith("postgresql"):
        world.sql("ALTER TABLE activities DROP CONSTRAINT ck_crm_rule")
    else:
        world.sql("DROP TRIGGER crm_rule")


def one_refused_row_costs_only_itself(world: World) -> None:
    phone_events(world, {BAD: "Refused here"})
    refuse_subject(world, "Refused here")

    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["crm_created"] == N - 1
    [error] = report.errors
    assert error.startswith("remote:") and f"e{BAD:03d}" in error, error
    # Said as the CRM's refusal of that item's data (with the store's reason), not as a bug of syncd's.
    assert "the CRM store refused it" in error and ("refuses this subject" in error or "ck_crm_rule" in error)
    assert not report.faults[0].bug
    activities, links = store_counts(world)
    assert len(activities) == N - 1 and activities == links
    assert "Refused here" not in {a.subject for a in world.all()}
    assert all(len(a.participants) == 1 for a in world.all())

    # The CRM accepts it now: the next pass retries that item alone and writes nothing twice.
    lift_rule(world)
    fixed = world.sync()
    assert fixed.result == "ok" and not fixed.errors and fixed.counts["crm_created"] == 1
    assert fixed.items_in_error == 0
    activities, links = store_counts(world)
    assert len(activities) == N and activities == links
    assert "Refused here" in {a.subject for a in world.all()}


def test_a_row_the_store_refuses_in_a_batch_costs_only_that_item(world: World) -> None:
    one_refused_row_costs_only_itself(world)


@pytest.mark.postgres
def test_a_row_the_store_refuses_in_a_batch_costs_only_that_item_on_postgresql(pg_world: World) -> None:
    one_refused_row_costs_only_itself(pg_world)


def test_two_calendar_items_with_one_uid_in_a_batch_make_one_activity(world: World) -> None:
    """Two calendar items with one UID (a server that lets a client store a copy under another name):
    one becomes the activity, the other an item error, never a second activity; the batch's others land."""
    phone = world.bind()
    folder = calendar_folder(world, phone)
    start = soon(2, 9).astimezone(UTC)
    for i in range(5):
        at = start + timedelta(hours=i)
        (folder / f"ok{i}.ics").write_bytes(phone_event(f"ok{i}@phone", f"Fine #{i}", at, GUEST))
    (folder / "twice.ics").write_bytes(phone_event("twice@phone", "Twice", start, GUEST))
    (folder / "twice-copy.ics").write_bytes(phone_event("twice@phone", "Twice (copy)", start, GUEST))

    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["crm_created"] == 6
    [error] = report.errors
    assert "twice" in error and "already exists" in error, error
    activities, links = store_counts(world)
    assert len(activities) == 6 and activities == links
    assert len([a for a in world.all() if a.subject.startswith("Twice")]) == 1


# -- a store failure or a killed process in the middle of a batch ------------------------------------

_KILLED_PASS = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from sqlalchemy import event
    from syncd import config
    from syncd.app import App

    from syncd.engine import runner

    runner.STORE_BATCH = int(sys.argv[2])
    app = App(config.load(Path(sys.argv[1])))

    @event.listens_for(app.engine, "connect")
    def _(dbapi_connection, _record):
        # What the test's trigger calls: the process dies at once, inside the batch's transaction.
        dbapi_connection.create_function("die_now", 0, lambda: os.kill(os.getpid(), signal.SIGKILL))

    app.run_pass(app.config.binding("anna"))
    """
)


def assert_every_activity_has_its_link_then_finish(world: World, done_before: set[str]) -> None:
    activities, links = store_counts(world)
    assert activities == links, "an activity without its link, or a link without its activity"
    assert len(activities) % BATCH_SIZE == 0 and len(activities) < N, len(activities)
    assert done_before <= activities

    report = world.sync()
    assert report.result == "ok" and not report.errors, (report.error, report.errors)
    assert report.counts["crm_created"] == N - len(activities)
    after, links = store_counts(world)
    assert len(after) == N and after == links
    subjects = sorted(a.subject for a in world.all())
    assert len(set(subjects)) == N, "a calendar item became two activities"
    assert all(a.owner == OWNER for a in world.all())
    quiet = world.sync()
    assert quiet.result == "ok" and sum(quiet.counts.values()) == 0, quiet.counts


def test_a_process_killed_in_the_middle_of_a_batch_leaves_no_activity_without_its_link(world: World) -> None:
    """SIGKILL while the second batch's rows are being inserted (a trigger on its sixth calls a
    function that kills the process): the first batch stays with its links, nothing of the second."""
    phone_events(world, {BATCH_SIZE + 5: "Dies here"})
    world.sql("CREATE TRIGGER die AFTER INSERT ON activities WHEN NEW.subject = 'Dies here' "
              "BEGIN SELECT die_now(); END")
    killed = subprocess.run([sys.executable, "-c", _KILLED_PASS, str(world.config_file()), str(BATCH_SIZE)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    world.sql("DROP TRIGGER die")
    assert_every_activity_has_its_link_then_finish(world, set())


@pytest.mark.postgres
def test_a_store_lost_in_the_middle_of_a_batch_leaves_no_activity_without_its_link(pg_world: World) -> None:
    """The server ends the pass's connection while it inserts the second batch's rows: the pass fails
    as a whole; what it committed has its links; the next pass finishes without a duplicate."""
    world = pg_world
    phone_events(world, {BATCH_SIZE + 5: "Dies here"})
    world.sql(
        "CREATE FUNCTION die_now() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.subject = 'Dies here' THEN PERFORM pg_terminate_backend(pg_backend_pid()); "
        "PERFORM pg_sleep(5); END IF; RETURN NEW; END $$"
    )
    world.sql("CREATE TRIGGER die AFTER INSERT ON activities FOR EACH ROW EXECUTE FUNCTION die_now()")
    report = world.sync()
    assert report.result == "failed", report.counts
    world.sql("DROP TRIGGER die ON activities")
    assert_every_activity_has_its_link_then_finish(world, set())
