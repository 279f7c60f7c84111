"""The engine's bookkeeping (links, cursors, conflicts, errors, passes) in the store's database."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import Text, cast, delete, select
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
from syncd.store.sync_models import (
    SyncBindingRow,
    SyncConflictRow,
    SyncErrorRow,
    SyncLinkRow,
    SyncPassRow,
)

log = get_logger("syncd.engine")

#: Ids per ``IN (...)`` query: well under every driver's bound-parameter limit.
CHUNK = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(activity: Activity | None) -> dict[str, Any] | None:
    return None if activity is None else activity_to_json(activity)


def _load(data: dict[str, Any] | None) -> Activity | None:
    return None if data is None else activity_from_json(data)


#: Enum lookups by value without Enum.__call__, which costs more than the rest of a link's row.
_KINDS = {k.value: k for k in Kind}
_STATUSES = {s.value: s for s in LinkStatus}


@lru_cache(maxsize=16_384)
def _base_from_text(text: str) -> Activity | None:
    """A link's merge base from its stored JSON text. Keyed by content, so never stale: a daemon
    decodes only the bases that changed since its last pass (activities are frozen, safe to share).
    Bounded so a daemon with many bindings keeps at most a few tens of MB of them.

    A base that no longer reads (stored by an older syncd under looser rules) is no base: the merge
    then treats every difference as a clash, which is safe, and the next write stores a good one.
    Failing here would fail every pass of the binding over one link."""
    try:
        return _load(json.loads(text))
    except Exception as exc:  # noqa: BLE001 - see above: any decoding failure costs only the merge base
        log.warning("a link's merge base does not read; merging without it", error=f"{type(exc).__name__}: {exc}")
        return None


def _fill_link(row: SyncLinkRow, link: Link, now: datetime) -> None:
    row.kind = link.kind.value
    row.ref = link.ref
    row.etag = link.etag
    row.crm_fp = link.crm_fp
    row.remote_fp = link.remote_fp
    row.base = _dump(link.base)
    row.status = link.status.value
    row.updated_at = now


class SqlSyncState:
    """:class:`syncd.engine.sides.SyncState` on SQLAlchemy; shares the CRM side's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            yield
            self.session.commit()
        except BaseException:
            self.session.rollback()
            raise

    # -- binding state ---------------------------------------------------------------------------

    def _binding_row(self, name: str) -> SyncBindingRow:
        row = self.session.get(SyncBindingRow, name)
        if row is None:
            row = SyncBindingRow(name=name, failures=0)
            self.session.add(row)
        return row

    def binding_state(self, binding: str) -> BindingState:
        row = self.session.get(SyncBindingRow, binding)
        if row is None:
            return BindingState(binding)
        return BindingState(
            binding, row.crm_cursor, row.remote_state, row.remote_state_at, set(row.retry or ()),
            row.window_start, row.window_end, row.remote_location,
        )

    def save_binding_state(self, state: BindingState) -> None:
        row = self._binding_row(state.name)
        row.crm_cursor = state.crm_cursor
        row.remote_state = state.remote_state
        row.remote_state_at = state.remote_state_at
        row.retry = sorted(state.retry)
        row.window_start, row.window_end = state.window_start, state.window_end
        row.remote_location = state.remote_location

    # -- links -----------------------------------------------------------------------------------

    def links(self, binding: str) -> dict[str, Link]:
        # Columns, not ORM rows, and the base as its JSON text, decoded only if a merge asks for it:
        # every pass reads every link but looks at the bases of the changed items alone, and decoding
        # thousands of bases dominated a no-change pass. The text is the decoding cache's key.
        rows = self.session.execute(
            select(
                SyncLinkRow.activity_id, SyncLinkRow.kind, SyncLinkRow.ref, SyncLinkRow.etag,
                SyncLinkRow.crm_fp, SyncLinkRow.remote_fp, cast(SyncLinkRow.base, Text), SyncLinkRow.status,
            ).where(SyncLinkRow.binding == binding)
        )
        return {
            activity_id: Link(
                binding, activity_id, _KINDS[kind], ref, etag, crm_fp, remote_fp,
                None if base is None else partial(_base_from_text, base), _STATUSES[status],
            )
            for activity_id, kind, ref, etag, crm_fp, remote_fp, base, status in rows
        }

    def written_since(self, binding: str, moment: datetime) -> set[str]:
        return set(
            self.session.scalars(
                select(SyncLinkRow.activity_id).where(SyncLinkRow.binding == binding, SyncLinkRow.updated_at > moment)
            )
        )

    def save_link(self, link: Link) -> None:
        row = self.session.get(SyncLinkRow, (link.binding, link.activity_id))
        if row is None:
            row = SyncLinkRow(binding=link.binding, activity_id=link.activity_id)
            self.session.add(row)
        _fill_link(row, link, _now())

    def save_links(self, binding: str, links: Sequence[Link]) -> None:
        # The rows that exist are read in one query per chunk (a get per link would be one each); the
        # flush then sends the new rows as one INSERT and the changed ones as one UPDATE.
        rows: dict[str, SyncLinkRow] = {}
        ids = [link.activity_id for link in links]
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows.update(
                (row.activity_id, row)
                for row in self.session.scalars(
                    select(SyncLinkRow).where(SyncLinkRow.binding == binding, SyncLinkRow.activity_id.in_(chunk))
                )
            )
        now = _now()
        for link in links:
            row = rows.get(link.activity_id)
            if row is None:
                row = rows[link.activity_id] = SyncLinkRow(binding=binding, activity_id=link.activity_id)
                self.session.add(row)
            _fill_link(row, link, now)

    def delete_link(self, binding: str, activity_id: str) -> None:
        self.delete_links(binding, [activity_id])

    def delete_links(self, binding: str, activity_ids: Sequence[str]) -> None:
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
        row = self.session.scalars(
            select(SyncErrorRow).where(SyncErrorRow.binding == binding, SyncErrorRow.item == key)
        ).first()
        if row is None:
            self.session.add(SyncErrorRow(binding=binding, item=key, message=message, count=1, first_at=at, last_at=at))
        else:
            row.message, row.count, row.last_at = message, row.count + 1, at

    def item_errors(self, binding: str) -> dict[str, ErrorInfo]:
        rows = self.session.execute(
            select(SyncErrorRow.item, SyncErrorRow.count, SyncErrorRow.last_at, SyncErrorRow.message)
            .where(SyncErrorRow.binding == binding)
        )
        return {item: ErrorInfo(count, last_at, message) for item, count, last_at, message in rows}

    def clear_error(self, binding: str, key: str) -> None:
        self.session.execute(delete(SyncErrorRow).where(SyncErrorRow.binding == binding, SyncErrorRow.item == key))

    # -- passes ----------------------------------------------------------------------------------

    def pass_started(self, binding: str, worker: str) -> int:
        with self.transaction():
            row = SyncPassRow(binding=binding, worker=worker, started_at=_now())
            self.session.add(row)
            self.session.flush()
            return row.id

    def pass_finished(self, pass_id: int, result: str, counts: dict[str, int], error: str | None) -> None:
        # Whatever a failed pass left half-done in the session is not wanted: every step that matters
        # committed on its own.
        self.session.rollback()
        with self.transaction():
            now = _now()
            row = self.session.get(SyncPassRow, pass_id)
            if row is not None:
                row.finished_at, row.result, row.counts, row.error = now, result, counts, error
                binding = self._binding_row(row.binding)
                binding.last_pass_at, binding.last_result, binding.last_counts = now, result, counts
                binding.last_error = error
                if result == "ok":
                    binding.last_success_at, binding.failures = now, 0
                else:
                    binding.failures = (binding.failures or 0) + 1
