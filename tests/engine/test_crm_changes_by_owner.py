"""A binding asks the store only for the CRM changes that concern it: its owner's activities (owned, or
taking part as a CRM user) and the activities it has a link for. Other users' changes are neither
picked up nor read, so a pass costs the same whatever the rest of the company did (1,000 bindings
syncing for the first time must not make each of them read the others' imports)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from world import BOB, OWNER, World, meeting, uid

from syncd.engine.crm_store import SqlCrmSide
from syncd.model import Participant, ParticipantKind
from syncd.store import changefeed

OTHERS = 300


def _cursor(world: World) -> int:
    with world.app().session() as session:
        return changefeed.current_cursor(session)


def _own_changes_and_bobs(world: World) -> None:
    """After anna's binding synced o1, o2 (deleted later) and gone-to-bob: bob's busy day, and each
    way a change can concern anna."""
    anna = Participant(ParticipantKind.USER, OWNER, "Anna")
    world.save(*(meeting(f"bob-{i}", f"Bob's call {i}", owner=BOB) for i in range(OTHERS)))
    world.save(
        meeting("o1", "Kick-off, moved room", location="Room 2"),  # owned, edited
        meeting("o3", "New and owned"),  # owned, new
        meeting("p1", "Bob invites Anna", owner=BOB, participants=(anna,)),  # taking part
        meeting("gone-to-bob", "Handed over", owner=BOB),  # linked, no longer hers
    )
    world.delete("o2")  # deleted while linked


@pytest.fixture(params=["world", "pg_world"])
def any_world(request: pytest.FixtureRequest) -> World:
    world: World = request.getfixturevalue(request.param)
    return world


def test_a_pass_picks_up_its_owners_changes_and_none_of_the_others(any_world: World) -> None:
    world = any_world
    phone = world.bind()
    world.save(meeting("o1", "Kick-off"), meeting("o2", "Review"), meeting("gone-to-bob", "Handover"))
    assert world.sync().result == "ok"
    cursor = _cursor(world)
    _own_changes_and_bobs(world)

    with world.app().session() as session:
        changes = SqlCrmSide(session, ("done",)).changes_for(cursor, OWNER, "anna")
    assert changes.changed == {"o1", "o3", "p1", "gone-to-bob"}
    assert changes.deleted == {"o2"}

    report = world.sync()
    assert report.result == "ok", report.error
    # Only her five activities were looked at: bob's 300 are neither created nor counted anywhere;
    # the one handed to bob and the deleted one leave her calendar.
    assert dict(report.counts) == {"remote_created": 2, "remote_updated": 1, "remote_deleted": 2}
    assert sorted(phone.items()) == sorted(uid(i) for i in ("o1", "o3", "p1"))
    assert "Room 2" in phone.items()[uid("o1")].to_ical().decode()


def test_other_users_changes_cost_a_binding_no_reading(world: World) -> None:
    world.bind()
    world.save(meeting("o1", "Kick-off"))
    world.sync()
    cursor = _cursor(world)
    world.save(*(meeting(f"bob-{i}", f"Bob's call {i}", owner=BOB) for i in range(600)))
    world.save(meeting("o1", "Kick-off, moved"))

    app = world.app()
    sent: list[tuple[str, Any]] = []
    event.listen(app.engine, "before_cursor_execute", lambda conn, cur, stmt, params, *a: sent.append((stmt, params)))
    with app.session() as session:
        changes = SqlCrmSide(session, ("done",)).changes_for(cursor, OWNER, "anna")
    assert changes.changed == {"o1"} and not changes.deleted
    # The user's id, then one query over the log (and the newest seq); bob's ids never come back to
    # Python to be asked about, in batches, as they did when the filtering was done here.
    assert len(sent) <= 3, [stmt for stmt, _ in sent]
    assert not any("bob-" in repr(params) for _, params in sent)
