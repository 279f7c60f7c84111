"""The engine's bookkeeping (links, cursors, conflicts, errors, passes) in the store's database.

A daemon runs a pass of every binding every few minutes, and most passes find nothing to do: what
such a pass reads and writes (the binding's state, its links, its item errors, the record of the
pass) are Core statements built once, here, with bound parameters, run on the session's connection
in its transaction. Built per call, or through the ORM's identity map and flush, they cost several
times the database's own work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    Text,
    Update,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from syncd.activity_json import activity_from_json, activity_to_json
from syncd.engine.actions import ConflictRecord
from syncd.engine.links import Link, LinkStatus
from syncd.engine.sides import BindingState, ErrorInfo
from syncd.logging import get_logger
from syncd.model import Activity, Kind
from syncd.store.db import table_of
from syncd.store.models import ActivityChangeRow
from syncd.store.sync_models import (
    SyncBindingRow,
    SyncConflictRow,
    SyncErrorRow,
    SyncLinkRow,
    SyncPassRow,
)
from syncd.store.types import UtcDateTime

log = get_logger("syncd.engine")

#: Ids per ``IN (...)`` query: well under every driver's bound-parameter limit.
CHUNK = 500


_bindings = table_of(SyncBindingRow)
_links = table_of(SyncLinkRow)
_errors = table_of(SyncErrorRow)
_passes = table_of(SyncPassRow)
_changes = table_of(ActivityChangeRow)

#: What a pass reads of its binding's row, in :func:`state_from_row`'s order.
STATE_COLUMNS = (
    _bindings.c.crm_cursor, _bindings.c.remote_state, _bindings.c.remote_state_at, _bindings.c.retry,
    _bindings.c.window_start, _bindings.c.window_end, _bindings.c.remote_location,
)
#: What a daemon's pass starts from, read by the claim of its lease: the binding's state and how many
#: of its items are in error (none, mostly: then they are not read).
START_COLUMNS = (
    *STATE_COLUMNS,
    select(func.count()).select_from(_errors).where(_errors.c.binding == bindparam("binding")).scalar_subquery(),
)
#: What the end of a pass leaves in its binding's row that the daemon paces the binding by.
FINISHED_COLUMNS = (_bindings.c.last_pass_at, _bindings.c.last_success_at, _bindings.c.failures)

_STATE = select(*STATE_COLUMNS).where(_bindings.c.name == bindparam("binding"))
_SAVE_STATE = update(_bindings).where(_bindings.c.name == bindparam("binding"))
#: A link without its merge base, which :class:`_Bases` reads when a merge asks for it.
_LINK_COLUMNS = (
    _links.c.activity_id, _links.c.kind, _links.c.ref, _links.c.etag, _links.c.crm_fp, _links.c.remote_fp,
    _links.c.status,
)
_LINKS = select(*_LINK_COLUMNS).where(_links.c.binding == bindparam("binding"))
#: Which of a batch's links exist: those are written over (their old bases not read), the rest inserted.
_EXISTING = select(_links.c.activity_id).where(
    _links.c.binding == bindparam("binding"), _links.c.activity_id.in_(bindparam("ids", expanding=True))
)
_INSERT_LINKS = insert(_links)
#: Run with many rows of :func:`_link_values` (which name the columns it sets) and the row's key.
_UPDATE_LINK = update(_links).where(
    _links.c.binding == bindparam("key_binding"), _links.c.activity_id == bindparam("key_activity_id")
)
#: Merge bases by activity id, as their JSON text (decoded when a merge first asks for one).
_BASES = select(_links.c.activity_id, cast(_links.c.base, Text)).where(
    _links.c.binding == bindparam("binding"), _links.c.activity_id.in_(bindparam("ids", expanding=True))
)
#: The links with whether each was written after the saved calendar state was read (what
#: :meth:`SqlSyncState.written_since` asks next), in the same read.
_LINKS_WRITTEN = select(
    *_LINK_COLUMNS, _links.c.updated_at > bindparam("since", type_=UtcDateTime)
).where(_links.c.binding == bindparam("binding"))
_WRITTEN = select(_links.c.activity_id).where(
    _links.c.binding == bindparam("binding"), _links.c.updated_at > bindparam("since", type_=UtcDateTime)
)
_ERRORS = select(_errors.c.item, _errors.c.count, _errors.c.last_at, _errors.c.message).where(
    _errors.c.binding == bindparam("binding")
)
_CLEAR_ERROR = delete(_errors).where(_errors.c.binding == bindparam("binding"), _errors.c.item == bindparam("item"))
_PASS_STARTED = insert(_passes)
_PASS_FINISHED = update(_passes).where(_passes.c.id == bindparam("pass_id"))
_PASS_BINDING = select(_passes.c.binding).where(_passes.c.id == bindparam("pass_id"))
#: Links written with their activities: each records its activity's newest change-log entry, read in
#: the transaction that logged the write (see ``SyncLinkRow.crm_seq``).
_OWN_WRITES = (
    update(_links)
    .where(_links.c.binding == bindparam("link_binding"), _links.c.activity_id.in_(bindparam("ids", expanding=True)))
    .values(crm_seq=select(func.max(_changes.c.seq)).where(_changes.c.activity_id == _links.c.activity_id)
            .scalar_subquery())
)


def state_from_row(binding: str, row: Sequence[Any] | None) -> BindingState:
    """A binding's state from its row's :data:`STATE_COLUMNS` (``None``: never synced)."""
    if row is None:
        return BindingState(binding)
    cursor, remote_state, remote_state_at, retry, window_start, window_end, location = row[:7]
    return BindingState(binding, cursor, remote_state, remote_state_at, set(retry or ()), window_start, window_end,
                        location)


@dataclass(frozen=True, slots=True)
class UpdateOne:
    """An UPDATE of one binding's row that reads some of its columns as it left them: by RETURNING
    where the database has it (PostgreSQL; SQLite from 3.35), else by a SELECT in the same
    transaction. Both forms are built once."""

    plain: Update
    returning: Update
    after: Select[Any]

    @classmethod
    def of(cls, statement: Update, columns: tuple[Any, ...]) -> UpdateOne:
        after = select(*columns).where(_bindings.c.name == bindparam("binding"))
        return cls(statement, statement.returning(*columns), after)

    def run(self, conn: Connection, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The row's columns after the update; None if no row matched."""
        if conn.dialect.update_returning:
            row = conn.execute(self.returning, params).first()
        elif conn.execute(self.plain, params).rowcount:
            row = conn.execute(self.after, params).first()
        else:
            return None
        return None if row is None else tuple(row)


#: The binding's record of its last pass: a success resets the failures, a failure adds one.
_FINISHED_OK = UpdateOne.of(
    update(_bindings).where(_bindings.c.name == bindparam("binding"))
    .values(last_success_at=bindparam("now", type_=UtcDateTime), failures=0),
    FINISHED_COLUMNS,
)
_FINISHED_FAILED = UpdateOne.of(
    update(_bindings).where(_bindings.c.name == bindparam("binding"))
    .values(failures=func.coalesce(_bindings.c.failures, 0) + 1),
    FINISHED_COLUMNS,
)


def _param(column: Any) -> Any:
    return bindparam(column.key, type_=column.type)


def _ending(ok: bool, state: bool) -> Update:
    """PostgreSQL's record of a pass's end in one statement (two on SQLite, which has no UPDATE in
    a WITH): the pass's row, and the binding's row that it names, with the state the pass saved if
    ``state``. Returns the binding's :data:`FINISHED_COLUMNS`; no row when either row is missing."""
    outcome = (_passes.c.finished_at, _passes.c.result, _passes.c.counts, _passes.c.error)
    ended = (update(_passes).where(_passes.c.id == bindparam("pass_id")).values({c: _param(c) for c in outcome})
             .returning(_passes.c.binding).cte("ended"))
    record = [_bindings.c.last_pass_at, _bindings.c.last_result, _bindings.c.last_counts, _bindings.c.last_error]
    values: dict[Any, Any] = {c: _param(c) for c in record + (list(STATE_COLUMNS) if state else [])}
    if ok:
        values.update({_bindings.c.last_success_at: bindparam("now", type_=UtcDateTime), _bindings.c.failures: 0})
    else:
        values[_bindings.c.failures] = func.coalesce(_bindings.c.failures, 0) + 1
    return (update(_bindings).where(_bindings.c.name == ended.c.binding).values(values)
            .returning(*FINISHED_COLUMNS).add_cte(ended))


_ENDING = {(ok, state): _ending(ok, state) for ok in (True, False) for state in (True, False)}


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(activity: Activity | None) -> dict[str, Any] | None:
    return None if activity is None else activity_to_json(activity)


def _load(data: dict[str, Any] | None) -> Activity | None:
    return None if data is None else activity_from_json(data)


#: Enum lookups by value without Enum.__call__, which costs more than the rest of a link's row.
_KINDS = {k.value: k for k in Kind}
_STATUSES = {s.value: s for s in LinkStatus}


def _base_from_text(text: str) -> Activity | None:
    """A link's merge base from its stored JSON text.

    A base that no longer reads (stored by an older syncd under looser rules) is no base: the merge
    then treats every difference as a clash, which is safe, and the next write stores a good one.
    Failing here would fail every pass of the binding over one link."""
    try:
        return _load(json.loads(text))
    except Exception as exc:  # noqa: BLE001 - see above: any decoding failure costs only the merge base
        log.warning("a link's merge base does not read; merging without it", error=f"{type(exc).__name__}: {exc}")
        return None


class _Bases:
    """The merge bases of one binding's links as :meth:`SqlSyncState.links` read them, read from the
    store when a merge asks: for a plan's items in one query per :data:`CHUNK`
    (:meth:`SqlSyncState.read_bases`), else one link at a time. Only the last plan's are held, so a
    pass holds a page's bases, never the binding's.

    What is read is what the pass read the links as: the binding's lease keeps other writers away,
    and a pass plans an item once per read of the links, so its own write of an item's link comes
    after the last question about that item's base."""

    __slots__ = ("_binding", "_conn", "_held")

    def __init__(self, binding: str, conn: Callable[[], Connection]) -> None:
        self._binding = binding
        self._conn = conn
        self._held: dict[str, Activity | str | None] = {}
        """By activity id: the base's JSON text as read, the base once decoded, or None (no base)."""

    def base_of(self, link: Link) -> Activity | None:
        key = link.activity_id
        if key not in self._held:
            self._held.update(self._read([key]))
        base = self._held[key]
        if isinstance(base, str):
            base = self._held[key] = _base_from_text(base)
        return base

    def read(self, ids: Collection[str]) -> None:
        """Hold the bases of these links in place of those held."""
        self._held = self._read(ids)

    def _read(self, ids: Collection[str]) -> dict[str, Activity | str | None]:
        held: dict[str, Activity | str | None] = dict.fromkeys(ids)
        chunk = list(held)
        for start in range(0, len(chunk), CHUNK):
            rows = self._conn().execute(_BASES, {"binding": self._binding, "ids": chunk[start : start + CHUNK]})
            held.update((key, text) for key, text in rows)
        return held


def _link_values(link: Link, now: datetime) -> dict[str, Any]:
    """What a link row holds besides its key; ``crm_seq`` is :data:`_OWN_WRITES`' business."""
    return {
        "kind": link.kind.value, "ref": link.ref, "etag": link.etag, "crm_fp": link.crm_fp,
        "remote_fp": link.remote_fp, "base": _dump(link.base), "status": link.status.value, "updated_at": now,
    }


class SqlSyncState:
    """:class:`syncd.engine.sides.SyncState` on SQLAlchemy; shares the CRM side's session.

    One instance serves one pass. What it read in the pass answers the pass's later questions while
    nothing it wrote since could change the answer (:meth:`written_since`, :meth:`item_errors`): the
    binding's lease keeps every other writer away from the binding's rows meanwhile."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.finished: tuple[Any, ...] | None = None
        """The binding's :data:`FINISHED_COLUMNS` as the end of the pass left them."""
        self._pass_bindings: dict[int, str] = {}
        self._unsaved: dict[str, dict[str, Any] | None] = {}
        """By binding, while its pass runs: the state it saved, written with the record of its end."""
        self._state_at: dict[str, datetime | None] = {}
        """Each binding's saved calendar state's time, as read by :meth:`binding_state`."""
        self._written: tuple[str, datetime, set[str]] | None = None
        """The links :meth:`links` saw written after that time, until a link is written or dropped."""
        self._errors: tuple[str, dict[str, ErrorInfo]] | None = None
        """The item errors last read, kept up to date by :meth:`clear_error` (any other write drops them)."""

    def _conn(self) -> Connection:
        return self.session.connection()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            yield
            self.session.commit()
        except BaseException:
            self.session.rollback()
            self._written = self._errors = None
            raise

    # -- binding state ---------------------------------------------------------------------------

    def binding_state(self, binding: str) -> BindingState:
        return self._remember(state_from_row(binding, self._conn().execute(_STATE, {"binding": binding}).first()))

    def _remember(self, state: BindingState, errors: int | None = None) -> BindingState:
        """``state`` as read in this pass; ``errors``: how many items were in error, if read with it."""
        self._state_at[state.name] = state.remote_state_at if state.remote_state is not None else None
        if errors == 0:
            self._errors = (state.name, {})
        return state

    def save_binding_state(self, state: BindingState) -> None:
        values = {
            "crm_cursor": state.crm_cursor, "remote_state": state.remote_state,
            "remote_state_at": state.remote_state_at, "retry": sorted(state.retry),
            "window_start": state.window_start, "window_end": state.window_end,
            "remote_location": state.remote_location,
        }
        if state.name in self._unsaved:
            # A pass's state is its last step before its end is recorded: written by the same UPDATE
            # of the binding's row, in that transaction (a pass that dies before it is repeated from
            # the older state, as one that died a moment earlier would be).
            self._unsaved[state.name] = values
            return
        self._write_state(state.name, values)

    def _write_state(self, binding: str, values: dict[str, Any]) -> None:
        if not self._conn().execute(_SAVE_STATE, {"binding": binding, **values}).rowcount:
            self.session.add(SyncBindingRow(name=binding, failures=0, **values))
            self.session.flush()

    # -- links -----------------------------------------------------------------------------------

    def links(self, binding: str) -> dict[str, Link]:
        # Columns, not ORM rows, and no merge bases: every pass reads every link but looks at the bases
        # of the changed items alone. Decoding them all dominated a no-change pass, and their text
        # alone most of its memory (some 1 KB a link).
        since = self._state_at.get(binding)
        rows: Iterable[Any]
        if since is None:
            rows = self._conn().execute(_LINKS, {"binding": binding})
            self._written = None
        else:
            rows = self._conn().execute(_LINKS_WRITTEN, {"binding": binding, "since": since})
            self._written = (binding, since, set())
        links: dict[str, Link] = {}
        bases = _Bases(binding, self._conn)
        for activity_id, kind, ref, etag, crm_fp, remote_fp, status, *written in rows:
            links[activity_id] = Link(binding, activity_id, _KINDS[kind], ref, etag, crm_fp, remote_fp, bases,
                                      _STATUSES[status])
            if written and written[0] and self._written is not None:
                self._written[2].add(activity_id)
        return links

    def read_bases(self, links: Iterable[Link]) -> None:
        wanted: dict[_Bases, list[str]] = {}
        for link in links:
            if isinstance(link.stored_base, _Bases):
                wanted.setdefault(link.stored_base, []).append(link.activity_id)
        for bases, ids in wanted.items():
            bases.read(ids)

    def written_since(self, binding: str, moment: datetime) -> set[str]:
        written = self._written
        if written is not None and written[0] == binding and written[1] == moment:
            return set(written[2])
        return set(self._conn().execute(_WRITTEN, {"binding": binding, "since": moment}).scalars())

    def save_link(self, link: Link) -> None:
        self.save_links(link.binding, [link])

    def save_links(self, binding: str, links: Sequence[Link], written: Collection[str] = ()) -> None:
        # Core statements, not ORM rows: which links exist is one query per chunk, the new ones go in
        # as one INSERT and the existing ones as one UPDATE (an executemany each). Through the unit of
        # work every row cost an object, its attribute events and its flush: most of the time a pull
        # spent on its links. A pass's session holds no link row, so none goes stale under these.
        self._written = None
        self.session.flush()  # whatever the session holds of this transaction precedes the links
        conn = self._conn()
        now = _now()
        written = set(written)
        # One row per activity, the last link given for it winning (as a row filled twice did).
        latest = list({link.activity_id: link for link in links}.values())
        for start in range(0, len(latest), CHUNK):
            chunk = latest[start : start + CHUNK]
            ids = [link.activity_id for link in chunk]
            existing = set(conn.execute(_EXISTING, {"binding": binding, "ids": ids}).scalars())
            new = [
                {"binding": binding, "activity_id": link.activity_id, **_link_values(link, now)}
                for link in chunk if link.activity_id not in existing
            ]
            old = [
                {"key_binding": binding, "key_activity_id": link.activity_id, **_link_values(link, now)}
                for link in chunk if link.activity_id in existing
            ]
            if new:
                conn.execute(_INSERT_LINKS, new)
            if old:
                conn.execute(_UPDATE_LINK, old)
            own = [i for i in ids if i in written]
            if own:
                conn.execute(_OWN_WRITES, {"link_binding": binding, "ids": own})

    def delete_link(self, binding: str, activity_id: str) -> None:
        self.delete_links(binding, [activity_id])

    def delete_links(self, binding: str, activity_ids: Sequence[str]) -> None:
        self._written = None
        for start in range(0, len(activity_ids), CHUNK):
            chunk = list(activity_ids[start : start + CHUNK])
            self.session.execute(
                delete(SyncLinkRow).where(SyncLinkRow.binding == binding, SyncLinkRow.activity_id.in_(chunk))
            )

    # -- conflicts and errors --------------------------------------------------------------------

    def record_conflict(self, binding: str, conflict: ConflictRecord, ref: str | None) -> int:
        row = None
        if conflict.resolution == "pending":
            row = self.session.scalars(
                select(SyncConflictRow).where(
                    SyncConflictRow.binding == binding,
                    SyncConflictRow.activity_id == conflict.activity_id,
                    SyncConflictRow.resolution == "pending",
                )
            ).first()
        if row is None:
            row = SyncConflictRow(binding=binding, activity_id=conflict.activity_id, detected_at=_now())
            self.session.add(row)
        row.ref = ref
        row.policy = conflict.policy
        row.fields = list(conflict.fields)
        row.crm_version = _dump(conflict.crm)
        row.remote_version = _dump(conflict.remote)
        row.base_version = _dump(conflict.base)
        row.resolution = conflict.resolution
        row.resolved_at = None if conflict.resolution == "pending" else _now()
        self.session.flush()
        return row.id

    def store_failure(self, exc: BaseException) -> bool:
        # A dropped or refused connection, a locked SQLite file: every item would fail the same way.
        # A constraint or a value the column refuses (IntegrityError, DataError) is one row's problem.
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout)

    def refusal(self, exc: BaseException) -> str | None:
        # A CRM's own constraint or trigger, or a value its column cannot hold: the driver's first line
        # says which (the rest is the statement and its parameters).
        if isinstance(exc, IntegrityError | DataError) and not self.store_failure(exc):
            lines = str(exc.orig).strip().splitlines()
            return lines[0] if lines else type(exc.orig).__name__
        return None

    def record_error(self, binding: str, key: str, message: str, at: datetime) -> None:
        self._errors = None
        row = self.session.scalars(
            select(SyncErrorRow).where(SyncErrorRow.binding == binding, SyncErrorRow.item == key)
        ).first()
        if row is None:
            self.session.add(SyncErrorRow(binding=binding, item=key, message=message, count=1, first_at=at, last_at=at))
        else:
            row.message, row.count, row.last_at = message, row.count + 1, at

    def item_errors(self, binding: str) -> dict[str, ErrorInfo]:
        if self._errors is not None and self._errors[0] == binding:
            return dict(self._errors[1])
        errors = {
            item: ErrorInfo(count, last_at, message)
            for item, count, last_at, message in self._conn().execute(_ERRORS, {"binding": binding})
        }
        self._errors = (binding, errors)
        return dict(errors)

    def clear_error(self, binding: str, key: str) -> None:
        self._conn().execute(_CLEAR_ERROR, {"binding": binding, "item": key})
        if self._errors is not None and self._errors[0] == binding:
            self._errors[1].pop(key, None)

    # -- passes ----------------------------------------------------------------------------------

    def pass_started(self, binding: str, worker: str) -> int:
        with self.transaction():
            key = self._conn().execute(
                _PASS_STARTED, {"binding": binding, "worker": worker, "started_at": _now()}
            ).inserted_primary_key
            assert key is not None  # an INSERT of one row
            pass_id: int = key[0]
        self._started(binding, pass_id)
        return pass_id

    def _started(self, binding: str, pass_id: int) -> None:
        self._pass_bindings[pass_id] = binding
        self._unsaved[binding] = None

    def pass_finished(self, pass_id: int, result: str, counts: dict[str, int], error: str | None) -> None:
        # Whatever a failed pass left half-done in the session is not wanted: every step that matters
        # committed on its own.
        self.session.rollback()
        self._written = self._errors = None
        binding = self._pass_bindings.get(pass_id)
        state = self._unsaved.pop(binding, None) if binding is not None else None
        with self.transaction():
            conn = self._conn()
            now = _now()
            params = {"pass_id": pass_id, "finished_at": now, "result": result, "counts": counts, "error": error}
            record = {"now": now, "last_pass_at": now, "last_result": result, "last_counts": counts,
                      "last_error": error, **(state or {})}
            if conn.dialect.name == "postgresql":
                row = conn.execute(_ENDING[result == "ok", state is not None], {**params, **record}).first()
                if row is not None:
                    self.finished = tuple(row)
                    return
                # The pass's or the binding's row is missing: recorded as below.
            if not conn.execute(_PASS_FINISHED, params).rowcount:
                if binding is not None and state is not None:
                    self._write_state(binding, state)
                return
            binding = binding or conn.execute(_PASS_BINDING, {"pass_id": pass_id}).scalar_one()
            finish = _FINISHED_OK if result == "ok" else _FINISHED_FAILED
            self.finished = finish.run(conn, {"binding": binding, **record})
            if self.finished is None:
                # A binding whose row is not there yet (the daemon's leases create it first).
                self.session.add(SyncBindingRow(name=binding, last_pass_at=now, last_result=result, last_counts=counts,
                                                last_error=error, last_success_at=now if result == "ok" else None,
                                                failures=0 if result == "ok" else 1, **(state or {})))
                self.session.flush()
                self.finished = tuple(conn.execute(_FINISHED_OK.after, {"binding": binding}).one())
