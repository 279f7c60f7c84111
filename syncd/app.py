"""Wiring: from a validated config to a store, connectors and runners. No sync logic lives here."""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from syncd.config import Binding, Config
from syncd.connectors.base import Connector
from syncd.errors import ConfigError, SyncdError
from syncd.mapping.context import MappingContext
from syncd.model import CrmUser

if TYPE_CHECKING:
    from syncd.connectors.caldav_early import EarlyReplies
    from syncd.engine.runner import PassReport
    from syncd.engine.sqlstate import SqlSyncState
    from syncd.service.kept import KeptConnectors


def _missing_sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite store file that does not exist; None for any other store."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database).absolute()
    return None if path.exists() else path


class App:
    def __init__(self, config: Config, worker: str | None = None, keep_connectors: bool = False,
                 early: EarlyReplies | None = None) -> None:
        self.config = config
        self.early = early
        """The first requests of ``syncd sync``'s passes, sent while it started; each binding's
        connector is handed its own, once."""
        self.worker = worker or socket.gethostname()
        self.kept: KeptConnectors | None = None
        """With ``keep_connectors`` (the daemon): each binding's connector and its HTTP session live
        from one pass to the next; otherwise a pass builds its connector and closes it."""
        if keep_connectors:
            from syncd.service.kept import KeptConnectors

            self.kept = KeptConnectors(self.connector)

    @cached_property
    def engine(self) -> Engine:
        from syncd.store.db import make_engine

        # The daemon's pass threads, its heartbeat and the health listener share this engine.
        return make_engine(self.config.store.url, connections=self.config.daemon.passes_at_once + 2)

    def ensure_schema(self, create: bool = True) -> None:
        """An embedded SQLite store is created and upgraded on first use; a PostgreSQL store is
        upgraded only by ``syncd db upgrade`` (ops decide when a schema changes), so here it is checked.

        ``create=False`` is for commands that only read or settle what passes left (status,
        conflicts, export): a SQLite file that is not there is an error, never a new empty store
        that reports "never synced". A store that cannot be reached raises the driver's error."""
        from syncd.store.db import SCHEMA_HEAD, schema_revision, upgrade

        url = self.config.store.url
        engine = self.engine  # first: a malformed URL or a missing driver is a ConfigError of its own
        if not create and (missing := _missing_sqlite_file(url)) is not None:
            where = (f"[store] url in {self.config.source}; a relative path is taken from that file's folder"
                     if self.config.from_file else
                     "no config file found, so the embedded default in the working directory")
            raise ConfigError(f"there is no store at {missing} ({where}): check --config, "
                              "or create the store with `syncd db upgrade`")
        current = schema_revision(engine)
        if current == SCHEMA_HEAD:
            return
        if make_url(url).get_backend_name() == "sqlite":
            upgrade(url)
            return
        raise ConfigError(
            f"the store is at schema revision {current or 'none'}, syncd needs {SCHEMA_HEAD}: "
            "run `syncd db upgrade`"
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        from syncd.store.db import session_factory

        session = session_factory(self.engine)()
        try:
            yield session
        finally:
            session.close()

    def context(self, session: Session, binding: Binding) -> MappingContext:
        from syncd.engine.runner import policy_for
        from syncd.store import repository

        user = repository.get_user(session, binding.owner)
        if user is None:
            raise ConfigError(
                f"binding {binding.name!r}: owner {binding.owner!r} is not a CRM user "
                "(add it with `syncd users add`)"
            )
        return MappingContext(
            owner=CrmUser(user.email, user.name, user.timezone),
            options=self.config.mapping,
            directory=repository.directory(session),
            send_invitations=binding.remote.send_invitations,
            fingerprinted=policy_for(binding).compared,
        )

    def connector(self, binding: Binding, ctx: MappingContext) -> Connector:
        """The connector for the binding's remote type, imported only when a binding uses it."""
        remote = binding.remote
        if remote.type == "caldav":
            from syncd.connectors.caldav import CalDavConnector

            return CalDavConnector(remote, ctx, early=self.early.take(binding.name) if self.early else None)
        if remote.type == "exchange":
            try:
                from syncd.connectors.exchange import ExchangeConnector
            except ModuleNotFoundError as exc:
                if (exc.name or "syncd").partition(".")[0] == "syncd":
                    raise  # a module of syncd's own missing is a bug, not an install choice
                # exchangelib (and what it pulls in) is an optional extra; say how to get it.
                raise ConfigError(
                    f"binding {binding.name!r}: an Exchange remote needs the exchange extra, which is not "
                    f"installed (no module {exc.name!r}): pip install 'syncd[exchange]'"
                ) from exc

            return ExchangeConnector(remote, ctx)
        if remote.type == "graph":
            try:
                from syncd.connectors.graph import GraphConnector
            except ModuleNotFoundError as exc:
                if (exc.name or "syncd").partition(".")[0] == "syncd":
                    raise
                raise ConfigError(
                    f"binding {binding.name!r}: a Microsoft Graph remote needs the graph extra, which is not "
                    f"installed (no module {exc.name!r}): pip install 'syncd[graph]'"
                ) from exc

            return GraphConnector(remote, ctx)
        raise ConfigError(f"binding {binding.name!r}: unknown remote type {remote.type!r}")

    def load_pass_code(self, bindings: list[Binding]) -> None:
        """Import what the passes of ``bindings`` run (the engine, the leases, each remote type's
        connector) now rather than at the first pass: ``syncd sync`` loads all of its code before it lets the
        cyclic garbage collector run again (see ``syncd.cli``). A connector whose extra is not
        installed is left to :meth:`connector`, which fails that binding's pass with the reason."""
        import syncd.engine.crm_store
        import syncd.engine.runner
        import syncd.engine.sqlstate
        import syncd.service.leases  # noqa: F401

        modules = {"caldav": "syncd.connectors.caldav", "exchange": "syncd.connectors.exchange",
                   "graph": "syncd.connectors.graph"}
        for name in sorted({modules[b.remote.type] for b in bindings if b.remote.type in modules}):
            with suppress(ImportError):
                importlib.import_module(name)

    def bindings(self, names: tuple[str, ...] = ()) -> list[Binding]:
        if names:
            return [self.config.binding(n) for n in names]
        return [b for b in self.config.bindings if b.enabled]

    def run_pass(
        self, binding: Binding, dry_run: bool = False, progress: Callable[[int, int], None] | None = None,
        clock: Callable[[], datetime] | None = None, bookkeeping: Callable[[Session], SqlSyncState] | None = None,
    ) -> PassReport:
        """One pass of ``binding``; ``bookkeeping`` makes the pass's sync state from its session (the
        daemon's also claims the binding's lease)."""
        from syncd.engine.crm_store import SqlCrmSide
        from syncd.engine.runner import PassReport, Runner
        from syncd.engine.sqlstate import SqlSyncState

        kept = self.kept
        with self.session() as session:
            state = (bookkeeping or SqlSyncState)(session)
            try:
                ctx = self.context(session, binding)
                lent = kept.lend(binding, ctx) if kept is not None else None
                connector = lent.connector if lent is not None else self.connector(binding, ctx)
            except SyncdError as exc:
                if not dry_run:
                    state.pass_finished(state.pass_started(binding.name, self.worker), "failed", {}, str(exc))
                return PassReport(binding.name, result="failed", error=str(exc))
            report: PassReport | None = None
            try:
                crm = SqlCrmSide(session, self.config.store.completed_statuses)
                runner = Runner(binding, connector, crm, state, worker=self.worker, progress=progress,
                                **({"clock": clock} if clock is not None else {}))
                report = runner.run(dry_run=dry_run)
                return report
            finally:
                if kept is not None and lent is not None:
                    # A pass that did not end well may have left the session or the client in any
                    # state: the next pass starts from a new connector.
                    kept.give_back(lent, keep=report is not None and report.result == "ok")
                else:
                    connector.close()
