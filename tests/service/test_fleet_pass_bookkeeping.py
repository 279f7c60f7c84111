"""A daemon pass's bookkeeping at fleet scale: one connection per pass, the pass's state written with
the record of its end, the claim and the pass's start one statement on PostgreSQL. None of it may
cost a guarantee: a pass that dies before its end is repeated without duplicates, a store connection
lost in a pass fails that pass alone (and its end is still recorded), a lease another worker holds
starts nothing, and one whose holder is gone is taken over."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from radicale_server import Answer, FaultProxy, Seen
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session
from structlog.testing import capture_logs
from world import World, meeting, soon

from syncd.app import App
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.engine.runner import PassReport
from syncd.engine.status import binding_status
from syncd.service.leases import LeasedState, Leases, LeaseTaken, worker_id

#: A no-change pass: the owner, the claim with the pass's start (two statements on SQLite), the
#: links, the change log's newest entry, and its end with its state (two on SQLite).
NO_CHANGE = {"sqlite": 7, "postgresql": 5}


@pytest.fixture
def pg_world(tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy, pg_store_url: str) -> World:
    return World(tmp_path, radicale, proxy, store_url=pg_store_url)


@pytest.fixture(params=["world", "pg_world"])
def any_world(request: pytest.FixtureRequest) -> World:
    world: World = request.getfixturevalue(request.param)
    return world


class Daemon:
    """Passes of ``anna`` as ``syncd run`` runs them, counting statements and pool checkouts."""

    def __init__(self, world: World, worker: str = "daemon/worker") -> None:
        self.app = App(world.config(), worker=worker, keep_connectors=True)
        self.leases = Leases(self.app.engine, worker, ttl=90)
        self.leases.ensure(["anna"])
        self.statements = self.checkouts = 0

    def run(self, state: type[LeasedState] = LeasedState) -> PassReport:
        states: list[LeasedState] = []

        def bookkeeping(session: Session) -> LeasedState:
            states.append(state(session, self.leases))
            return states[-1]

        with self._counted():
            try:
                return self.app.run_pass(self.app.config.binding("anna"), bookkeeping=bookkeeping)
            finally:
                for made in states:
                    made.release()  # as the scheduler does after every pass

    @contextmanager
    def _counted(self) -> Iterator[None]:
        self.statements = self.checkouts = 0

        def statement(*_: Any) -> None:
            self.statements += 1

        def checkout(*_: Any) -> None:
            self.checkouts += 1

        event.listen(self.app.engine, "before_cursor_execute", statement)
        event.listen(self.app.engine, "checkout", checkout)
        try:
            yield
        finally:
            event.remove(self.app.engine, "before_cursor_execute", statement)
            event.remove(self.app.engine, "checkout", checkout)

    def in_use(self) -> int:
        return self.app.engine.pool.checkedout()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.app.kept.close()  # type: ignore[union-attr]
        self.app.engine.dispose()


def test_a_no_change_pass_holds_one_connection_and_writes_its_state_with_its_end(any_world: World) -> None:
    world = any_world
    world.bind()
    world.save(meeting("m1"), meeting("m2", days=4))
    daemon = Daemon(world)
    assert daemon.run().counts["remote_created"] == 2
    daemon.run()
    cursor_before = world.sql("SELECT crm_cursor FROM sync_bindings WHERE name = 'anna'")

    idle = daemon.run()
    assert idle.result == "ok" and not idle.counts, dict(idle.counts)
    assert daemon.checkouts == 1 and daemon.in_use() == 0
    assert daemon.statements <= NO_CHANGE[daemon.app.engine.dialect.name]
    (state, ended), = world.sql("SELECT remote_state, last_result FROM sync_bindings WHERE name = 'anna'")
    assert state and ended == "ok"
    assert world.sql("SELECT crm_cursor FROM sync_bindings WHERE name = 'anna'") == cursor_before

    # A CRM edit after it still reaches the calendar: the state written with the end is the right one.
    world.save(meeting("m1").replace(subject="Moved"))
    assert daemon.run().counts["remote_updated"] == 1
    assert world.sql("SELECT result FROM sync_passes ORDER BY id") == [("ok",)] * 4
    daemon.close()


class DiesBeforeItsEnd(LeasedState):
    """A process killed after the pass's work, before the record of its end."""

    def pass_finished(self, pass_id: int, result: str, counts: dict[str, int], error: str | None) -> None:
        raise SystemExit("killed")


def test_a_pass_that_dies_before_its_end_is_repeated_without_duplicates(any_world: World) -> None:
    world = any_world
    phone = world.bind()
    phone.create_event("visit-1@example.org", "Visit 1", soon(2))
    world.save(meeting("m1"))
    daemon = Daemon(world)
    with pytest.raises(SystemExit):
        daemon.run(DiesBeforeItsEnd)
    assert daemon.in_use() == 0
    # Its items were written (each with its link), its state and end were not: never synced, to status.
    assert sorted(a.subject for a in world.all()) == ["Kick-off", "Visit 1"]
    with daemon.app.session() as session:
        assert binding_status(session, daemon.app.config.binding("anna"))["state"] == "never synced"

    again = daemon.run()
    assert again.result == "ok", again.error
    assert not {k: v for k, v in again.counts.items() if k.endswith("created")}, dict(again.counts)
    assert sorted(a.subject for a in world.all()) == ["Kick-off", "Visit 1"]
    assert len(phone.hrefs()) == 2
    assert not daemon.run().counts
    daemon.close()


def test_a_lease_held_by_another_worker_starts_no_pass(any_world: World) -> None:
    world = any_world
    world.bind()
    daemon = Daemon(world)
    assert Leases(daemon.app.engine, "another/worker", ttl=90).claim("anna")
    with pytest.raises(LeaseTaken):
        daemon.run()
    assert daemon.in_use() == 0
    assert world.sql("SELECT count(*) FROM sync_passes") == [(0,)]
    daemon.close()


@pytest.mark.skipif(not Path("/proc/self/ns/pid").exists(), reason="whether a holder is gone is read from /proc")
def test_a_lease_whose_holder_is_gone_is_taken_over_and_the_pass_recorded(any_world: World) -> None:
    """On PostgreSQL the claim that records the pass's start takes no row here: the takeover, then
    the start, are statements of their own."""
    world = any_world
    world.bind()
    world.save(meeting("m1"))
    exited = subprocess.Popen(["true"])  # its pid is free once it has exited
    exited.wait()
    gone = f"{worker_id().rpartition(':')[0]}:{exited.pid}"
    daemon = Daemon(world, worker=worker_id())
    world.sql("UPDATE sync_bindings SET lease_owner = :gone, lease_expires = :until WHERE name = 'anna'",
              gone=gone, until=datetime.now(UTC) + timedelta(hours=1))
    report = daemon.run()
    assert report.result == "ok" and report.counts["remote_created"] == 1, report.error
    assert world.sql("SELECT lease_owner FROM sync_bindings WHERE name = 'anna'") == [(worker_id(),)]
    assert world.sql("SELECT worker, result FROM sync_passes") == [(worker_id(), "ok")]
    daemon.close()


def test_a_store_connection_lost_in_a_pass_fails_that_pass_alone(pg_world: World, proxy: FaultProxy) -> None:
    """PostgreSQL drops the pass's connection while the pass waits for the calendar: that pass fails
    and its end is recorded on a new connection; the next one syncs."""
    world = pg_world
    world.bind()
    world.save(meeting("m1"))
    daemon = Daemon(world)
    assert daemon.run().counts["remote_created"] == 1
    killed: list[int] = []
    admin = create_engine(world.store_url, isolation_level="AUTOCOMMIT")

    def drop_the_pass_connection(seen: Seen, answer: Answer) -> Answer:
        if not killed:
            with admin.connect() as conn:
                waiting = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                            "AND state = 'idle in transaction'")).scalars().all()
                for pid in waiting:
                    if conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar():
                        killed.append(pid)
        return answer

    proxy.rewrite = drop_the_pass_connection
    try:
        with capture_logs() as logged:  # captured, not rendered: a rendered traceback costs seconds
            lost = daemon.run()
    finally:
        proxy.rewrite = None
        admin.dispose()
    assert len(killed) == 1
    assert lost.result == "failed" and daemon.in_use() == 0
    assert [e for e in logged if e["event"] == "pass failed with an internal error"], logged
    assert world.sql("SELECT result FROM sync_passes ORDER BY id") == [("ok",), ("failed",)]
    assert world.sql("SELECT failures FROM sync_bindings WHERE name = 'anna'") == [(1,)]

    world.save(meeting("m2", days=3))
    after = daemon.run()
    assert after.result == "ok" and after.counts["remote_created"] == 1, after.error
    assert world.sql("SELECT failures FROM sync_bindings WHERE name = 'anna'") == [(0,)]
    daemon.close()
