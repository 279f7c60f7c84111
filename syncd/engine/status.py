"""Read-side of the engine's bookkeeping: binding status, conflicts, and settling a manual conflict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from syncd.config import Binding
from syncd.engine.isolation import next_attempt
from syncd.engine.links import LinkStatus
from syncd.errors import SyncdError
from syncd.service.leases import holder_gone
from syncd.store.sync_models import (
    SyncBindingRow,
    SyncConflictRow,
    SyncErrorRow,
    SyncLinkRow,
    SyncPassRow,
)


def binding_status(session: Session, binding: Binding, all_errors: bool = False) -> dict[str, Any]:
    """A binding's state; with ``all_errors``, every item in error with its reason and next try."""
    row = session.get(SyncBindingRow, binding.name)
    links = session.scalar(select(func.count()).select_from(SyncLinkRow).where(SyncLinkRow.binding == binding.name))
    pending = session.scalar(
        select(func.count())
        .select_from(SyncConflictRow)
        .where(SyncConflictRow.binding == binding.name, SyncConflictRow.resolution == "pending")
    )
    errors = session.scalars(
        select(SyncErrorRow).where(SyncErrorRow.binding == binding.name).order_by(SyncErrorRow.item)
    ).all()
    failures = row.failures if row else 0
    last_worker = session.scalar(
        select(SyncPassRow.worker).where(SyncPassRow.binding == binding.name).order_by(SyncPassRow.id.desc()).limit(1)
    )
    # A lease past its expiry belongs to a worker that stopped renewing it (gone, or stuck).
    # A holder on this host whose process is gone holds nothing: the next worker or sync takes it.
    lease_owner: str | None = None
    lease_expires: datetime | None = None
    if (row is not None and row.lease_owner and row.lease_expires and row.lease_expires > datetime.now(UTC)
            and not holder_gone(row.lease_owner)):
        lease_owner, lease_expires = row.lease_owner, row.lease_expires
    if not binding.enabled:
        state = "disabled"
    elif row is None or row.last_result is None:
        state = "never synced"
    elif row.last_result == "ok":
        state = "ok, with items in error" if errors else "ok"
    else:
        state = "failing"
    return {
        "name": binding.name,
        "owner": binding.owner,
        "remote": binding.remote.type,
        "state": state,
        "last_pass_at": row.last_pass_at if row else None,
        "last_result": row.last_result if row else None,
        "last_success_at": row.last_success_at if row else None,
        "last_counts": (row.last_counts or {}) if row else {},
        "last_error": row.last_error if row else None,
        "last_worker": last_worker,
        "lease_owner": lease_owner,
        "lease_expires": lease_expires,
        "consecutive_failures": failures,
        "links": links or 0,
        "pending_conflicts": pending or 0,
        "item_errors": len(errors),
        "item_error_samples": [f"{e.item}: {e.message}" for e in errors[:5]],
        "errors": [
            {"item": e.item, "message": e.message, "failures": e.count, "first_at": e.first_at,
             "last_at": e.last_at, "next_try": next_attempt(e.count, e.last_at)}
            for e in errors
        ] if all_errors else [],
    }


def list_conflicts(session: Session, pending_only: bool = True) -> list[dict[str, Any]]:
    query = select(SyncConflictRow).order_by(SyncConflictRow.id)
    if pending_only:
        query = query.where(SyncConflictRow.resolution == "pending")
    return [
        {
            "id": row.id,
            "binding": row.binding,
            "activity_id": row.activity_id,
            "fields": row.fields or [],
            "policy": row.policy,
            "resolution": row.resolution,
            "detected_at": row.detected_at,
            "resolved_at": row.resolved_at,
            "crm": row.crm_version or {},
            "remote": row.remote_version or {},
        }
        for row in session.scalars(query)
    ]


def forget_binding(session: Session, name: str) -> int:
    """Drop the binding's links, sync state, item errors and pending conflicts; returns the links
    dropped. Its pass history and settled conflicts stay as a record."""
    links = session.scalar(select(func.count()).select_from(SyncLinkRow).where(SyncLinkRow.binding == name)) or 0
    session.execute(delete(SyncLinkRow).where(SyncLinkRow.binding == name))
    session.execute(delete(SyncErrorRow).where(SyncErrorRow.binding == name))
    session.execute(delete(SyncConflictRow).where(SyncConflictRow.binding == name,
                                                  SyncConflictRow.resolution == "pending"))
    row = session.get(SyncBindingRow, name)
    if row is not None:
        row.crm_cursor = row.remote_state = row.remote_state_at = None
        row.retry = []
        row.window_start = row.window_end = row.remote_location = None
    session.commit()
    return links


def resolve_conflict(session: Session, conflict_id: int, keep: str) -> str:
    """Mark the conflict settled and tell the link which side wins; the next pass writes it."""
    row = session.get(SyncConflictRow, conflict_id)
    if row is None:
        raise SyncdError(f"no conflict #{conflict_id}; see `syncd conflicts list`")
    if row.resolution != "pending":
        raise SyncdError(f"conflict #{conflict_id} was already settled ({row.resolution})")
    link = session.get(SyncLinkRow, (row.binding, row.activity_id))
    row.resolution = f"kept-{keep}"
    row.resolved_at = datetime.now(UTC)
    if link is not None:
        link.status = (LinkStatus.RESOLVE_CRM if keep == "crm" else LinkStatus.RESOLVE_REMOTE).value
    session.commit()
    return row.binding
