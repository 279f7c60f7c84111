"""Several ``syncd run`` processes on one PostgreSQL store share the bindings through leases in the
database: each binding is synced, never by two workers at once, and a killed worker's bindings are
taken over by the others once its leases expire."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from processes import SyncdProcess, by_binding, passes, wait_for, write_config
from radicale_server import FaultProxy
from world import World, meeting

from syncd.connectors.radicale_embedded import EmbeddedRadicale

BINDINGS = 50
TTL = 3.0
#: A lease ends at most TTL after the killed worker's last renewal; a survivor's next heartbeat
#: (every TTL / 3) takes it, and its first pass starts within the jitter.
TAKEOVER = TTL + TTL / 3 + 0.5 + 2.0
DAEMON = {"interval": 1.5, "jitter": 0.5, "max_backoff": 10.0, "lease_ttl": TTL, "stop_timeout": 10.0, "listen": ""}


@pytest.mark.postgres
def test_three_workers_share_fifty_bindings_and_take_over_from_a_killed_one(
    tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy, pg_store_url: str
) -> None:
    world = World(tmp_path, radicale, proxy, store_url=pg_store_url)
    for n in range(BINDINGS):
        world.bind(f"user{n:02d}", remote={"timeout": 10})
    # Every binding is anna's, so each of the 50 calendars gets her two meetings.
    world.save(meeting("M-1", "Weekly sales meeting"), meeting("M-2", "Quarterly review", days=4))
    config = write_config(tmp_path / "config.toml", world.store_url, world.bindings, **DAEMON)
    workers = [SyncdProcess(config, tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        def synced() -> bool:
            return len({p.binding for p in passes(world.store_url) if p.result == "ok"}) == BINDINGS

        wait_for("every binding synced", synced, 40, every=0.5)

        def leases() -> Counter[str]:
            rows = world.sql("SELECT lease_owner FROM sync_bindings WHERE lease_expires > now()")
            return Counter(owner for (owner,) in rows)

        # Shares settle at ceil(50 / 3) = 17 at most per worker.
        wait_for("a fair share each", lambda: len(leases()) == 3 and max(leases().values()) <= 17
                 and sum(leases().values()) == BINDINGS, 15, every=0.3)

        victim = workers[2]
        victim_id = next(owner for owner in leases() if owner.endswith(victim.worker_suffix))
        orphans = {name for (name,) in world.sql("SELECT name FROM sync_bindings WHERE lease_owner = :w", w=victim_id)}
        victim.kill()
        killed_at = datetime.now(UTC)

        def taken_over() -> bool:
            later = [p for p in passes(world.store_url) if p.started_at > killed_at and p.result == "ok"]
            return orphans <= {p.binding for p in later}

        wait_for("the killed worker's bindings synced by the others", taken_over, TAKEOVER, every=0.2)
        for survivor in workers[:2]:
            assert survivor.stop() == 0
    finally:
        for worker in workers:
            worker.kill()

    every = passes(world.store_url)
    assert {p.worker for p in every if p.started_at > killed_at} and victim_id not in {
        p.worker for p in every if p.started_at > killed_at + timedelta(seconds=0.1)}
    # No two passes of one binding overlap; the killed worker's last pass ended when it was killed.
    for binding, runs in by_binding(every).items():
        runs.sort(key=lambda p: p.started_at)
        for before, after in itertools.pairwise(runs):
            end = before.finished_at or killed_at
            assert after.started_at >= end, (binding, before, after)
    assert all(p.finished_at is not None or p.worker == victim_id for p in every)
    # Every binding's calendar has both meetings.
    assert world.sql("SELECT count(DISTINCT binding) FROM sync_links WHERE status = 'synced'") == [(BINDINGS,)]
    assert world.sql("SELECT count(*) FROM sync_links") == [(2 * BINDINGS,)]
