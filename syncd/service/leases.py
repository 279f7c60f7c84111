"""Which worker may run which binding: leases in the store's own database, no other coordination.

A lease is the pair ``sync_bindings.lease_owner`` / ``lease_expires``. It is taken and renewed only by
a conditional ``UPDATE ... WHERE lease_owner IS NULL OR lease_owner = me OR lease_expires < now``; the
database serialises concurrent updates of one row (PostgreSQL re-checks the condition on the row a
concurrent winner committed; SQLite has a single writer), so at most one worker holds a binding at a
time on either database. A worker renews its leases on every heartbeat; one that dies loses them
``ttl`` seconds after its last heartbeat, and the others take them over. One that is gone from this
host (same machine and pid namespace, see ``holder_gone``) holds nothing: its leases are taken at
once, by an update conditional on its still being named, and it no longer counts as live.

Live workers are rows of ``sync_workers`` whose heartbeat has not expired; each worker holds at most
``ceil(bindings / live workers)`` bindings, so a new worker gets a fair share as the others release
their excess. Time is the database's clock on PostgreSQL (workers on several machines agree on it)
and the local clock on SQLite (which is local anyway).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import random
import re
import socket
import threading
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session

from syncd.engine.sides import BindingState
from syncd.engine.sqlstate import START_COLUMNS, SqlSyncState, UpdateOne, state_from_row
from syncd.errors import SyncdError
from syncd.logging import get_logger
from syncd.store.sync_models import SyncBindingRow, SyncPassRow, SyncWorkerRow
from syncd.store.types import UtcDateTime

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

log = get_logger("syncd.service")

# Through the metadata, which types them as the Tables they are (``__table__`` is any FromClause).
_bindings = SyncBindingRow.metadata.tables[SyncBindingRow.__tablename__]
_workers = SyncWorkerRow.metadata.tables[SyncWorkerRow.__tablename__]
_passes = SyncPassRow.metadata.tables[SyncPassRow.__tablename__]


@dataclass(frozen=True, slots=True)
class BindingInfo:
    """What a worker taking a binding over needs to resume its rhythm."""

    name: str
    last_pass_at: datetime | None
    last_success_at: datetime | None
    failures: int


#: ``host/KEY.START:PID``: KEY names the machine and pid namespace (``_host_key``), START is the
#: process's start time in clock ticks after boot. Older versions wrote ``host:PID``, which is still
#: read (and still written where /proc is missing): such a holder keeps the TTL rule.
_WORKER = re.compile(r"(?P<host>.*)/(?P<key>[0-9a-f]{8})\.(?P<start>[0-9]+):(?P<pid>[0-9]+)", re.DOTALL)
_OWNER_MAX = 128  # sync_bindings.lease_owner, sync_workers.worker


def worker_id() -> str:
    """Unique among running processes: a restarted process is a new worker, and so is a process that
    got the pid of a dead one (the start time differs), so its leases are not mistaken for the new one's."""
    host, pid = socket.gethostname(), os.getpid()
    key, me = _host_key(), _proc_stat(pid)
    if key is None or me is None:
        return f"{host}:{pid}"[:_OWNER_MAX]
    tail = f"/{key}.{me[1]}:{pid}"
    # Cut the host name, never the tail: a truncated tail would make the holder unrecognisable.
    return host[: _OWNER_MAX - len(tail)] + tail


@functools.cache
def _host_key() -> str | None:
    """Who shares this process's pids: the machine (/etc/machine-id; in containers without one, the
    kernel's boot id) and the pid namespace, hashed short. A host name alone is not enough: clones
    and containers share names, and stealing a live holder's lease would mean two passes at once.
    Only files every syncd on the host can read count: the unit's ProcSubset=pid hides /proc/sys,
    so the boot id is only the fallback, or the daemon and a `syncd sync` from a shell would
    disagree about being on one host. None (no takeover, the TTL rule) when these are unreadable."""
    machine = ""
    for path in ("/etc/machine-id", "/proc/sys/kernel/random/boot_id"):
        try:
            machine = Path(path).read_text().strip()
        except OSError:
            continue
        if machine:
            break
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    if not machine:
        return None
    return hashlib.sha256(f"{machine}\0{namespace}".encode()).hexdigest()[:8]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """State and start time (clock ticks after boot) of a process; None when /proc does not show it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may itself hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def holder_gone(worker: str) -> bool:
    """True only when ``worker`` is certainly not running: it ran on this host (same machine and pid
    namespace, so its pid means the same process here) and its pid is free, a zombie, or another
    process's (a different start time). Anything in doubt (another host, an id older versions
    wrote, a process /proc hides from us) is False: the lease then expires after its TTL as before.

    Why not PostgreSQL session advisory locks, which would also cover other hosts: a lock ends
    with its connection, not with its process. A server restart, a dropped connection or a pooler
    in transaction mode would free the binding while its holder is still in a pass, so another
    worker would start a second pass of it at once, which the lease exists to prevent; the holder
    would have to notice and abort its pass first. They would also cost each worker a connection
    of its own, and SQLite has nothing like them. The TTL stays the rule across hosts."""
    m = _WORKER.fullmatch(worker)
    if m is None or m["key"] != _host_key():
        return False
    # Compared as worker_id() cuts it: a clone that kept the machine id but was renamed is told apart.
    if m["host"] != socket.gethostname()[: _OWNER_MAX - (len(worker) - len(m["host"]))]:
        return False
    pid, start = int(m["pid"]), int(m["start"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process: it exists
    seen = _proc_stat(pid)
    if seen is None:
        # It exists but /proc hides it (ProtectProc=invisible, hidepid): no start time to compare.
        return False
    state, started = seen
    return started != start or state in ("Z", "X")


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
        # Every pass claims its lease: the statements are built once. PostgreSQL's clock inside the
        # statement (no round trip to read it first); SQLite's is this machine's, bound per claim.
        now: Any = func.clock_timestamp() if self._pg else bindparam("now", type_=UtcDateTime)
        expires: Any = now + self.ttl if self._pg else bindparam("expires", type_=UtcDateTime)
        take = update(_bindings).values(lease_owner=self.worker, lease_expires=expires)
        named = _bindings.c.name == bindparam("binding")
        self._claim = UpdateOne.of(take.where(named, self._free_or_mine(now)), START_COLUMNS)
        # Conditional on the dead holder still being named: of two workers taking over at once,
        # only one wins (the database serialises the two updates of the row).
        self._take_over = UpdateOne.of(take.where(named, _bindings.c.lease_owner == bindparam("holder")), START_COLUMNS)
        self._holder = select(_bindings.c.lease_owner).where(named)
        self._claim_start = self._claiming_start(take.where(named, self._free_or_mine(now))) if self._pg else None

    @staticmethod
    def _claiming_start(claim: Any) -> Select[Any]:
        """PostgreSQL's claim that records the pass's start too: the claimed row feeds the INSERT
        (one statement and round trip, not two; nothing is inserted when the claim takes no row)."""
        claimed = claim.returning(*(c.label(f"c{i}") for i, c in enumerate(START_COLUMNS))).cte("claimed")
        values = select(bindparam("binding", type_=String), bindparam("worker", type_=String),
                        bindparam("started_at", type_=UtcDateTime)).select_from(claimed)
        started = (insert(_passes).from_select(["binding", "worker", "started_at"], values)
                   .returning(_passes.c.id).cte("started"))
        return select(*claimed.c, started.c.id).select_from(claimed.join(started, true()))

    def now(self, conn: Connection) -> datetime:
        if self._pg:
            return conn.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(UTC)
        return datetime.now(UTC)

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that knows ON CONFLICT (both dialects have it; SQLAlchemy's generic one does not).
        Each dialect is imported here, by the store that uses it: a SQLite store never loads PostgreSQL's."""
        if self._pg:
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    def _free_or_mine(self, now: Any) -> ColumnElement[bool]:
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
            live = list(conn.execute(select(_workers.c.worker).where(_workers.c.expires_at > now)).scalars())
            # A dead worker counted as live would shrink the fair share, so that a restarted
            # `syncd run` took only part of the bindings of the one that was killed, until the TTL.
            gone = [w for w in live if w != self.worker and holder_gone(w)]
            if gone:
                conn.execute(delete(_workers).where(_workers.c.worker.in_(gone)))
            return len(live) - len(gone)

    def leave(self) -> None:
        """A clean stop: give every lease back and leave the worker list, so others take over now."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_bindings)
                .where(_bindings.c.lease_owner == self.worker)
                .values(lease_owner=None, lease_expires=None)
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

    def claim(self, name: str, conn: Connection | None = None) -> bool:
        """Take or extend the lease of one binding; False if another worker holds it (one that is
        gone from this host holds nothing). In ``conn``'s transaction if given (the caller commits),
        else in one of its own."""
        if conn is None:
            with self.engine.begin() as own:
                return self.claim(name, own)
        return self.take(name, conn) is not None

    def take(self, name: str, conn: Connection, claimed: bool = False) -> tuple[Any, ...] | None:
        """:meth:`claim` in ``conn``'s transaction, reading what a pass starts from
        (:data:`~syncd.engine.sqlstate.START_COLUMNS`) in the same statement. None if another
        worker holds the binding. ``claimed``: the plain claim was just tried and took no row."""
        if self._pg:
            params: dict[str, Any] = {"binding": name}
        else:
            now = datetime.now(UTC)
            params = {"binding": name, "now": now, "expires": now + self.ttl}
        row = None if claimed else self._claim.run(conn, params)
        if row is not None:
            return row
        holder = conn.execute(self._holder, params).scalar()
        if holder is None or not holder_gone(holder):
            return None
        row = self._take_over.run(conn, {**params, "holder": holder})
        if row is None:
            return None
        log.info("lease taken over from a worker that is gone", binding=name, holder=holder)
        return row

    def take_starting(self, name: str, conn: Connection, worker: str,
                      started_at: datetime) -> tuple[tuple[Any, ...], int | None] | None:
        """:meth:`take`, recording the start of ``worker``'s pass in the same statement where the
        database allows it: the claimed row and the new pass's id, None for an id not recorded yet
        (the caller inserts it). None if another worker holds the binding."""
        if self._claim_start is not None:
            started = conn.execute(self._claim_start, {"binding": name, "worker": worker, "started_at": started_at})
            if (row := started.first()) is not None:
                return tuple(row[:-1]), row[-1]
        claimed = self.take(name, conn, claimed=self._claim_start is not None)
        return None if claimed is None else (claimed, None)

    def acquire(self, wanted: Collection[str], limit: int) -> list[str]:
        """Take up to ``limit`` of the ``wanted`` bindings that nobody holds (or whose holder died)."""
        if limit <= 0 or not wanted:
            return []
        with self.engine.connect() as conn:
            now = self.now(conn)
            rows = conn.execute(
                select(
                    _bindings.c.name,
                    _bindings.c.lease_owner,
                    or_(_bindings.c.lease_owner.is_(None), _bindings.c.lease_expires < now).label("free"),
                ).where(_bindings.c.name.in_(list(wanted)))
            ).all()
        # One look at /proc per holder, not per binding: a worker may hold hundreds.
        holders = {r.lease_owner for r in rows if not r.free and r.lease_owner != self.worker}
        gone = {holder for holder in holders if holder_gone(holder)}
        free = [r.name for r in rows if r.free or r.lease_owner in gone]
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



class LeaseTaken(SyncdError):
    """Another worker holds the binding: the pass did not start."""


class LeasedState(SqlSyncState):
    """A daemon pass's bookkeeping under this worker's lease. The claim that confirms the lease
    reads the binding's state and commits with the record of the pass's start (one transaction, not
    two), and what the scheduler paces the binding by is taken from the row the pass's end wrote
    (no query of its own).

    The pass's session keeps one connection from the start to the end (:meth:`release`): checked
    out per transaction, each of a no-change pass's three paid the pool and, on PostgreSQL, the
    pre-ping's round trip again. Its first checkout still pings, and a connection lost in the pass
    is replaced by SQLAlchemy when the next transaction begins on it."""

    def __init__(self, session: Session, leases: Leases) -> None:
        super().__init__(session)
        self._leases = leases
        self._claimed: dict[str, tuple[Any, ...]] = {}
        self.info: BindingInfo | None = None
        """The binding as the pass left it; set when the pass's end is recorded."""
        # Bound before the session's first statement (it cannot change connections in a transaction).
        self._engine = session.get_bind()
        self._held: Connection | None = None
        if isinstance(self._engine, Engine):
            self._held = session.bind = self._engine.connect()

    def release(self) -> None:
        """Give the pass's connection back to the pool (idempotent); the session, should it be used
        after, checks one out per transaction again."""
        held, self._held = self._held, None
        if held is None:
            return
        self.session.close()
        self.session.bind = self._engine
        held.close()

    def pass_started(self, binding: str, worker: str) -> int:
        try:
            taken = self._leases.take_starting(binding, self.session.connection(), worker, datetime.now(UTC))
            if taken is not None and taken[1] is not None:
                self.session.commit()
        except BaseException:
            self.session.rollback()
            self.release()
            raise
        if taken is None:
            self.session.rollback()
            self.release()
            raise LeaseTaken(f"binding {binding!r} is held by another worker")
        row, pass_id = taken
        if pass_id is None:
            pass_id = super().pass_started(binding, worker)
        else:
            self._started(binding, pass_id)
        self._claimed[binding] = row
        return pass_id

    def binding_state(self, binding: str) -> BindingState:
        # As the claim read it: while this worker holds the lease no other pass writes the row, nor
        # the binding's item errors.
        row = self._claimed.pop(binding, None)
        if row is None:
            return super().binding_state(binding)
        return self._remember(state_from_row(binding, row), errors=row[len(START_COLUMNS) - 1])

    def pass_finished(self, pass_id: int, result: str, counts: dict[str, int], error: str | None) -> None:
        try:
            super().pass_finished(pass_id, result, counts, error)
        finally:
            self.release()
        binding = self._pass_bindings.get(pass_id)
        if self.finished is not None and binding is not None:
            last_pass_at, last_success_at, failures = self.finished
            self.info = BindingInfo(binding, last_pass_at, last_success_at, failures or 0)


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
