"""Months of running: the change log is pruned behind the slowest binding, and nothing is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from world import World, meeting

from syncd.engine.housekeeping import prune_change_log, prune_passes


def test_the_change_log_is_pruned_behind_the_slowest_binding(world: World) -> None:
    world.bind("anna")
    world.bind("lagging")
    world.save(meeting("h1"), meeting("h2", days=4))
    world.sync("anna")
    world.sync("lagging")
    world.save(meeting("h1", "Kick-off (later)"))
    world.sync("anna")  # "lagging" has not read this change yet
    later = datetime.now(UTC) + timedelta(days=200)
    with world.app().session() as session:
        pruned = prune_change_log(session, ["anna", "lagging"], keep_days=90, now=later)
    assert pruned == 2  # the two inserts both bindings have read; the update waits for "lagging"
    report = world.sync("lagging")
    assert report.result == "ok" and report.counts["remote_updated"] == 1
    with world.app().session() as session:
        assert prune_change_log(session, ["anna", "lagging"], keep_days=90, now=later) == 0  # the newest stays
    world.save(meeting("h2", "Review (later)"))
    assert world.sync("anna").counts["remote_updated"] == 1  # cursors still work after pruning


def test_recent_entries_are_kept(world: World) -> None:
    world.bind()
    world.save(meeting("r1"), meeting("r2", days=4))
    world.sync()
    with world.app().session() as session:
        assert prune_change_log(session, ["anna"], keep_days=90) == 0


def test_old_passes_are_dropped_recent_ones_kept(world: World) -> None:
    world.bind()
    for _ in range(3):
        world.sync()
    with world.app().session() as session:
        assert prune_passes(session) == 0
        assert prune_passes(session, now=datetime.now(UTC) + timedelta(days=31)) == 3
    assert world.sql("SELECT count(*) FROM sync_passes") == [(0,)]
    assert world.sync().result == "ok"
