"""The sync engine on the production store: PostgreSQL, with the CRM writing plain SQL."""

from __future__ import annotations

import pytest
from world import World, master, meeting, uid

pytestmark = pytest.mark.postgres


def test_a_full_cycle_on_postgresql(pg_world: World) -> None:
    world = pg_world
    phone = world.bind()
    world.save(meeting("pg1", "Kick-off"), meeting("pg2", "Review", days=4), meeting("pg3", "Lunch", days=5))
    assert world.sync().counts["remote_created"] == 3
    # The CRM writes with its own SQL; the phone edits and deletes.
    world.sql("UPDATE activities SET subject = 'Kick-off (SQL)' WHERE id = 'pg1'")
    world.sql("DELETE FROM activities WHERE id = 'pg3'")
    phone.edit(uid("pg2"), location="Room 7")
    report = world.sync()
    assert report.result == "ok", report.error
    assert (report.counts["remote_updated"], report.counts["remote_deleted"], report.counts["crm_updated"]) == (1, 1, 1)
    assert str(master(phone.get(uid("pg1"))[0])["SUMMARY"]) == "Kick-off (SQL)"
    assert set(phone.items()) == {uid("pg1"), uid("pg2")}
    assert world.get("pg2").location == "Room 7"
    # A conflict merged field by field, then silence.
    world.save(meeting("pg1", "Kick-off (CRM)"))
    phone.edit(uid("pg1"), location="Room 9")
    world.sync()
    assert (world.get("pg1").subject, world.get("pg1").location) == ("Kick-off (CRM)", "Room 9")
    assert sum(world.sync().counts.values()) == 0
