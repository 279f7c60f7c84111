"""Which worker may run which binding: leases in the store's own database, no other coordination.

A lease is the pair ``sync_bindings.lease_owner`` / ``lease_expires``. It is taken and renewed only by
a conditional ``UPDATE ... WHERE lease_owner IS NULL OR lease_owner = me OR lease_expires < now``; the
database serialises concurrent updates of one row (PostgreSQL re-checks the condition on the row a
concurrent winner committed; SQLite has a single writer), so at most one worker holds a binding at a
time on either database. A worker renews its leases on every heartbeat; one that dies loses them
``ttl`` seconds after its last heartbeat, and the others take them over.

Live workers are rows of ``sync_workers`` whose heartbeat has not expired; each worker holds at most
``ceil(bindings / live workers)`` bindings, so a new worker gets a fair share as the others release
their excess. Time is the database's clock on PostgreSQL (workers on several machines agree on it)
and the local clock on SQLite (which is local anyway).
"""

from __future__ import annotations

import math
import os
import random
import socket
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from syncd.store.sync_models import SyncBindingRow, SyncWorkerRow

_bindings: Table = SyncBindingRow.__table__  # type: ignore[assignment]
_workers: Table = SyncWorkerRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class BindingInfo:
    """What a worker taking a binding over needs to resume its rhythm."""

    name: str
    last_pass_at: datetime | None
    last_success_at: datetime | None
    failures: int


def worker_id() -> str:
    """Unique among running processes: a restarted process is a new worker."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def fair_share(bindings: int, live_workers: int) -> int:
    return math.ceil(bindings / max(1, live_workers))


class Leases:
    """The leases of one worker (``worker`` is its id, unique among running processes)."""

    def __init__(self, engine: Engine, worker: str, ttl: float) -> None:
        self.engine = engine
        self.worker = worker
        self.ttl = timedelta(seconds=ttl)
        self._pg = engine.dialect.name == "postgresql"
        self._started_at: datetime | None = None

    def now(self, conn: Connection) -> datetime:
        if self._pg:
            return conn.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(UTC)
        return datetime.now(UTC)

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that knows ON CONFLICT (both dialects have it; SQLAlchemy's generic one does not)."""
        return postgresql.insert(table) if self._pg else sqlite.insert(table)

    def _free_or_mine(self, now: datetime):
        return or_(
            _bindings.c.lease_owner.is_(None),
            _bindings.c.lease_owner == self.worker,
            _bindings.c.lease_expires < now,
        )

    # -- workers ---------------------------------------------------------------------------------

    def heartbeat(self) -> int:
        """Record this worker as alive; returns how many workers are alive, this one included."""
        with self.engine.begin() as conn:
            now = self.now(conn)
            self._started_at = self._started_at or now
            row = {"worker": self.worker, "started_at": self._started_at, "heartbeat_at": now,
                   "expires_at": now + self.ttl}
            stmt = self._insert(_workers).values(**row)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[_workers.c.worker],
                set_={"heartbeat_at": stmt.excluded.heartbeat_at, "expires_at": stmt.excluded.expires_at},
            ))
            # Rows of workers long gone are only noise for `syncd status`.
            conn.execute(delete(_workers).where(_workers.c.expires_at < now - 10 * self.ttl))
            return conn.execute(select(func.count()).select_from(_workers).where(_workers.c.expires_at > now)).scalar_one()

    def leave(self) -> None:
        """A clean stop: give every lease back and leave the worker list, so others take over now."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_bindings).where(_bindings.c.lease_owner == self.worker).values(lease_owner=None, lease_expires=None)
            )
            conn.execute(delete(_workers).where(_workers.c.worker == self.worker))

    # -- bindings --------------------------------------------------------------------------------

    def ensure(self, names: Iterable[str]) -> None:
        """Create the rows of bindings never seen before (any worker may race to do it)."""
        names = list(names)
        if not names:
            return
        with self.engine.begin() as conn:
            stmt = self._insert(_bindings).values([{"name": n, "failures": 0} for n in names])
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[_bindings.c.name]))

    def renew(self) -> set[str]:
        """Extend every lease this worker still holds; returns their names. A lease another worker
        took (after this one missed heartbeats) is not renewed and drops out."""
        with self.engine.begin() as conn:
            now = self.now(conn)
            conn.execute(
                update(_bindings)
                .where(_bindings.c.lease_owner == self.worker)
                .values(lease_expires=now + self.ttl)
            )
            return set(conn.execute(select(_bindings.c.name).where(_bindings.c.lease_owner == self.worker)).scalars())

    def claim(self, name: str) -> bool:
        """Take or extend the lease of one binding; False if another worker holds it."""
        with self.engine.begin() as conn:
            now = self.now(conn)
            done = conn.execute(
                update(_bindings)
                .where(and_(_bindings.c.name == name, self._free_or_mine(now)))
                .values(lease_owner=self.worker, lease_expires=now + self.ttl)
            )
            return done.rowcount == 1

    def acquire(self, wanted: Collection[str], limit: int) -> list[str]:
        """Take up to ``limit`` of the ``wanted`` bindings that nobody holds (or whose holder died)."""
        if limit <= 0 or not wanted:
            return []
        with self.engine.connect() as conn:
            now = self.now(conn)
            free = list(conn.execute(
                select(_bindings.c.name).where(
                    _bindings.c.name.in_(list(wanted)),
                    or_(_bindings.c.lease_owner.is_(None), _bindings.c.lease_expires < now),
                )
            ).scalars())
        # Workers starting together try the free bindings in different orders, so they rarely
        # race for the same row.
        random.shuffle(free)
        taken: list[str] = []
        for name in free:
            if len(taken) >= limit:
                break
            if self.claim(name):
                taken.append(name)
        return taken

    def info(self, name: str) -> BindingInfo:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_bindings.c.last_pass_at, _bindings.c.last_success_at, _bindings.c.failures)
                .where(_bindings.c.name == name)
            ).one()
        return BindingInfo(name, row.last_pass_at, row.last_success_at, row.failures or 0)

    def release(self, names: Collection[str]) -> None:
        if not names:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(_bindings)
                .where(_bindings.c.name.in_(list(names)), _bindings.c.lease_owner == self.worker)
                .values(lease_owner=None, lease_expires=None)
            )



@contextmanager
def holding(engine: Engine, worker: str, name: str, ttl: float) -> Iterator[bool]:
    """Hold one binding's lease for the length of a ``with`` block (a pass run outside the daemon, by
    ``syncd sync``), renewing it meanwhile; yields False, holding nothing, if another worker has it."""
    leases = Leases(engine, worker, ttl)
    leases.ensure([name])
    if not leases.claim(name):
        yield False
        return
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            leases.claim(name)

    renewer = threading.Thread(target=renew, name=f"lease:{name}", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join()
        leases.release([name])
