"""The daemon keeps one connector, and so one HTTP connection, per binding from pass to pass; a pass
that fails, a changed setting or a rotated secret gets a fresh one. And its passes still run only
under the binding's lease, now claimed in the transaction that records the pass's start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from radicale_server import PASSWORD, FaultProxy
from sqlalchemy.orm import Session
from world import OWNER, World, meeting, uid

from syncd.app import App
from syncd.config import Binding
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.mapping.context import MappingContext
from syncd.model import CrmUser, Directory
from syncd.service.kept import KeptConnectors
from syncd.service.leases import LeasedState, Leases, LeaseTaken


def _count_connections(world: World) -> list[object]:
    """The TCP connections the test proxy (HTTP/1.1, keep-alive) accepts from now on."""
    server = world.proxy._server
    accepted: list[object] = []
    accept = server.get_request

    def counting() -> Any:
        connection = accept()
        accepted.append(connection[1])
        return connection

    server.get_request = counting
    return accepted


def _daemon_app(world: World, **binding_changes: Any) -> App:
    return App(world.config(**binding_changes), keep_connectors=True)


def test_a_daemon_binding_keeps_its_connection_from_pass_to_pass(world: World) -> None:
    phone = world.bind()
    app = _daemon_app(world)
    binding = app.config.binding("anna")
    accepted = _count_connections(world)

    for i in range(3):
        world.save(meeting(f"m{i}", f"Call {i}"))
        report = app.run_pass(binding)
        assert report.result == "ok", report.error
    assert sorted(phone.items()) == sorted(uid(f"m{i}") for i in range(3))
    assert len(accepted) == 1, "three passes, one connection"

    # `syncd sync` (no kept connectors) opens one per pass, as before.
    for _ in range(2):
        assert world.app().run_pass(binding).result == "ok"
    assert len(accepted) == 3
    app.kept.close()  # type: ignore[union-attr]


def test_a_failed_pass_drops_the_connector_and_the_next_pass_starts_afresh(world: World) -> None:
    phone = world.bind()
    app = _daemon_app(world)
    binding = app.config.binding("anna")
    assert app.run_pass(binding).result == "ok"
    accepted = _count_connections(world)

    world.proxy.mode = "error"
    world.save(meeting("m1"))
    failed = app.run_pass(binding)
    assert failed.result == "failed" and "HTTP 500" in (failed.error or "")
    assert len(app.kept) == 0  # type: ignore[arg-type]
    assert accepted == [], "the failed pass ran on the kept connection"

    world.proxy.mode = "pass"
    for _ in range(2):
        assert app.run_pass(binding).result == "ok"
    assert uid("m1") in phone.items()
    assert len(accepted) == 1, "a new connection after the failure, kept again"
    app.kept.close()  # type: ignore[union-attr]


def test_a_changed_password_is_used_by_the_next_pass(world: World, tmp_path: Path) -> None:
    """Inline in the config (a reload) or rotated in a password file (no reload: read each pass)."""
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    world.bind(remote={"password": None, "password_file": str(secret)})
    app = _daemon_app(world)
    binding = app.config.binding("anna")
    assert app.run_pass(binding).result == "ok"

    secret.write_text("not-the-password")
    refused = app.run_pass(binding)
    assert refused.result == "failed" and "refused the credentials" in (refused.error or "")
    secret.write_text(PASSWORD)
    assert app.run_pass(binding).result == "ok"

    # A reload that changes the binding (here: the password inline) builds a new connector.
    app.config = world.config(remote={**world.bindings[0]["remote"], "password": "wrong", "password_file": None})
    refused = app.run_pass(app.config.binding("anna"))
    assert refused.result == "failed" and "refused the credentials" in (refused.error or "")
    app.config = world.config(remote={**world.bindings[0]["remote"], "password": PASSWORD, "password_file": None})
    assert app.run_pass(app.config.binding("anna")).result == "ok"
    app.kept.close()  # type: ignore[union-attr]


@pytest.fixture
def pg_world(tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy, pg_store_url: str) -> World:
    """The world on a PostgreSQL store."""
    return World(tmp_path, radicale, proxy, store_url=pg_store_url)


class _Recorder:
    """A stand-in connector: only what KeptConnectors touches (building, closing, the context)."""

    def __init__(self, binding: Binding, ctx: MappingContext) -> None:
        self.ctx = ctx
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_kept_connector_reads_each_passs_crm_people_and_is_closed_with_the_daemon(world: World) -> None:
    """A kept connector's mapping context must not serve the people an earlier pass read (a CRM user
    added since is a user, not an external attendee), nor hold on to a closed session."""
    world.bind()
    binding = world.config().binding("anna")
    kept = KeptConnectors(_Recorder)  # type: ignore[arg-type]
    owner = CrmUser(OWNER, "Anna", "Europe/Amsterdam")

    first = kept.lend(binding, MappingContext(owner, directory=Directory(users={"anna@example.com": "Anna"})))
    connector: Any = first.connector
    assert connector.ctx.directory.classify("carol@example.com").value == "external"
    kept.give_back(first, keep=True)
    assert len(connector.ctx.directory.users) == 0, "no pass: it reads nobody's people"

    people = {"anna@example.com": "Anna", "carol@example.com": "Carol"}
    second = kept.lend(binding, MappingContext(owner, directory=Directory(users=people)))
    assert second.connector is connector
    assert connector.ctx.directory.classify("carol@example.com").value == "user"
    kept.give_back(second, keep=True)

    # Another owner's name or time zone is another mapping context: a new connector.
    third = kept.lend(binding, MappingContext(CrmUser(OWNER, "Anna", "Asia/Tokyo")))
    rebuilt: Any = third.connector
    assert rebuilt is not connector and connector.closed
    kept.give_back(third, keep=True)
    kept.close()
    assert rebuilt.closed


@pytest.mark.parametrize("store", ["world", "pg_world"])
def test_a_second_daemon_runs_no_pass_of_a_binding_the_first_holds(store: str, request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(store)
    phone = world.bind()
    first, second = _daemon_app(world), _daemon_app(world)
    first_leases = Leases(first.engine, "first/worker", ttl=90)
    second_leases = Leases(second.engine, "second/worker", ttl=90)
    first_leases.ensure(["anna"])
    assert first_leases.claim("anna")
    world.save(meeting("m1"))

    def under(leases: Leases) -> Any:
        states: list[LeasedState] = []

        def bookkeeping(session: Session) -> LeasedState:
            states.append(LeasedState(session, leases))
            return states[-1]

        return states, bookkeeping

    _, second_bookkeeping = under(second_leases)
    with pytest.raises(LeaseTaken):
        second.run_pass(second.config.binding("anna"), bookkeeping=second_bookkeeping)
    assert phone.items() == {}
    assert world.sql("SELECT count(*) FROM sync_passes")[0][0] == 0

    states, first_bookkeeping = under(first_leases)
    report = first.run_pass(first.config.binding("anna"), bookkeeping=first_bookkeeping)
    assert report.result == "ok", report.error
    assert uid("m1") in phone.items()
    assert states[-1].info is not None and states[-1].info.failures == 0
    assert world.sql("SELECT worker FROM sync_passes") == [(first.worker,)]
    for app in (first, second):
        app.kept.close()  # type: ignore[union-attr]
        app.engine.dispose()
