"""What a daemon pass that finds nothing to do costs the store. One daemon runs a pass of each of
thousands of bindings every few minutes, so such a pass is a handful of statements; and it still
records what `syncd status`, /metrics and the scheduler read: the pass, its result, the lease, the
items in error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from radicale_server import FaultProxy
from sqlalchemy import event
from sqlalchemy.orm import Session
from world import World, master, meeting, soon

from syncd.app import App
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.engine.runner import PassReport
from syncd.engine.status import binding_status
from syncd.service.leases import LeasedState, Leases

#: Claim the lease (reading the binding's state), record the pass's start, the owner, the links,
#: the change log's newest entry, the pass's end with the state saved, and the binding's record of
#: it. PostgreSQL claims the lease and starts the pass in one statement, and ends the pass and
#: records it in one more (``syncd.service.leases``, ``syncd.engine.sqlstate``).
NO_CHANGE_STATEMENTS = {"world": 7, "pg_world": 5}

WORKER = "daemon/worker"


@pytest.fixture
def pg_world(tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy, pg_store_url: str) -> World:
    """The world on a PostgreSQL store."""
    return World(tmp_path, radicale, proxy, store_url=pg_store_url)


class Daemon:
    """Passes of the world's bindings as ``syncd run`` runs them: kept connectors, under a lease."""

    def __init__(self, world: World) -> None:
        self.app = App(world.config(), worker=WORKER, keep_connectors=True)
        self.leases = Leases(self.app.engine, WORKER, ttl=90)
        self.leases.ensure(["anna"])
        self.statements: list[str] = []
        self.state: LeasedState | None = None

    def run(self) -> PassReport:
        def bookkeeping(session: Session) -> LeasedState:
            self.state = LeasedState(session, self.leases)
            return self.state

        with self._counted():
            report = self.app.run_pass(self.app.config.binding("anna"), bookkeeping=bookkeeping)
        assert report.result == "ok", report.error
        return report

    @contextmanager
    def _counted(self) -> Iterator[None]:
        self.statements = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            self.statements.append(" ".join(statement.split()))

        event.listen(self.app.engine, "before_cursor_execute", count)
        try:
            yield
        finally:
            event.remove(self.app.engine, "before_cursor_execute", count)

    def close(self) -> None:
        self.app.kept.close()  # type: ignore[union-attr]
        self.app.engine.dispose()


@pytest.mark.parametrize("store", ["world", "pg_world"])
def test_a_daemon_pass_that_finds_nothing_runs_a_handful_of_statements(
    store: str, request: pytest.FixtureRequest
) -> None:
    world: World = request.getfixturevalue(store)
    world.bind()
    world.save(meeting("m1"), meeting("m2", days=4))
    daemon = Daemon(world)
    assert daemon.run().counts["remote_created"] == 2
    daemon.run()

    report = daemon.run()
    assert not report.counts, dict(report.counts)
    assert len(daemon.statements) <= NO_CHANGE_STATEMENTS[store], "\n".join(daemon.statements)

    # What it recorded is what `syncd status` shows and the scheduler paces the binding by.
    passes = world.sql("SELECT worker, result, finished_at FROM sync_passes ORDER BY id")
    assert [(w, r, done is not None) for w, r, done in passes] == [(WORKER, "ok", True)] * 3
    with daemon.app.session() as session:
        status = binding_status(session, daemon.app.config.binding("anna"))
    assert (status["state"], status["lease_owner"], status["links"], status["last_counts"]) == ("ok", WORKER, 2, {})
    assert daemon.state is not None and daemon.state.info is not None
    assert daemon.state.info.failures == status["consecutive_failures"] == 0
    assert daemon.state.info.last_pass_at == status["last_pass_at"] == status["last_success_at"]
    daemon.close()


def test_a_daemon_pass_reports_the_items_still_in_error_and_none_once_they_sync(world: World) -> None:
    """The claim reads how many items are in error: a pass that has some reads and reports them (the
    syncd_items_in_error gauge), one that has none reads nothing more."""
    world.bind()
    world.save(meeting("stuck"), meeting("fine", days=4))
    world.sql("UPDATE activities SET timezone = 'Nowhere/Land' WHERE id = 'stuck'")
    daemon = Daemon(world)
    first = daemon.run()
    assert first.errors and first.items_in_error == 1
    assert daemon.run().errors  # retried at once: the second failure
    backing_off = daemon.run()
    assert not backing_off.errors and backing_off.items_in_error == 1

    world.sql("UPDATE activities SET timezone = 'Europe/Amsterdam' WHERE id = 'stuck'")
    fixed = daemon.run()
    assert fixed.counts["remote_created"] == 1 and fixed.items_in_error == 0
    idle = daemon.run()
    assert not idle.counts and idle.items_in_error == 0
    assert len(daemon.statements) <= NO_CHANGE_STATEMENTS["world"]
    assert world.sql("SELECT count(*) FROM sync_errors") == [(0,)]
    daemon.close()


@pytest.mark.parametrize("store", ["world", "pg_world"])
def test_the_pass_after_a_pull_into_the_crm_does_not_read_its_own_imports_back(
    store: str, request: pytest.FixtureRequest
) -> None:
    """The activities a pass imported are logged as CRM changes after its cursor; the links written
    with them record those entries as the binding's own, so the next pass loads none of them (after
    a mass first sync, that was every binding's next pass). A CRM edit made since still comes through."""
    world: World = request.getfixturevalue(store)
    phone = world.bind()
    for i in range(3):
        phone.create_event(f"phone-{i}@example.org", f"Visit {i}", soon(i + 1, 9))
    daemon = Daemon(world)
    assert daemon.run().counts["crm_created"] == 3

    after = daemon.run()
    assert not after.counts, dict(after.counts)
    assert not [s for s in daemon.statements if "FROM activities" in s], "\n".join(daemon.statements)
    assert len(daemon.statements) <= NO_CHANGE_STATEMENTS[store] + 1  # the change log is read: it moved

    visit = next(a for a in world.all() if a.subject == "Visit 1")
    world.save(visit.replace(subject="Visit 1, moved to the office"))
    edited = daemon.run()
    assert edited.counts["remote_updated"] == 1, dict(edited.counts)
    assert str(master(phone.get("phone-1@example.org")[0])["SUMMARY"]) == "Visit 1, moved to the office"
    daemon.close()


def test_without_returning_the_claim_and_the_pass_record_read_the_row_after_the_update(world: World) -> None:
    """SQLite before 3.35 has no UPDATE ... RETURNING (the distributions' of some long-term releases):
    the claim and the pass's end then read the binding's row in the same transaction instead."""
    world.bind()
    world.save(meeting("m1"))
    daemon = Daemon(world)
    daemon.app.engine.dialect.update_returning = False  # as SQLAlchemy finds such an SQLite
    assert daemon.run().counts["remote_created"] == 1
    assert not any("RETURNING" in s for s in daemon.statements)
    other = Leases(daemon.app.engine, "another/worker", ttl=90)
    assert not other.claim("anna"), "held by the daemon"
    assert daemon.state is not None and daemon.state.info is not None
    assert daemon.state.info.failures == 0 and daemon.state.info.last_success_at is not None
    assert not daemon.run().counts
    daemon.close()
