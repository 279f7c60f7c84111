"""The sync engine's own tables: links, per-binding state, conflicts, item errors, passes, leases.

They live in the CRM store's database so that a CRM write and the link that records it commit in one
transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from syncd.store.models import Base
from syncd.store.types import JsonValue, UtcDateTime


class SyncLinkRow(Base):
    __tablename__ = "sync_links"
    __table_args__ = (Index("ix_sync_links_ref", "binding", "ref"),)

    binding: Mapped[str] = mapped_column(String(128), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    crm_fp: Mapped[str | None] = mapped_column(String(64))
    remote_fp: Mapped[str | None] = mapped_column(String(64))
    base: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    status: Mapped[str] = mapped_column(String(16), default="synced")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    crm_seq: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    """The activity's newest change-log entry when syncd wrote it with this link (in one transaction):
    entries up to it are syncd's own write, not a CRM change for this binding (migration 0007)."""


class SyncBindingRow(Base):
    __tablename__ = "sync_bindings"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    crm_cursor: Mapped[int | None] = mapped_column(BigInteger)
    remote_state: Mapped[str | None] = mapped_column(Text)
    remote_state_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When ``remote_state`` was read: links written after it may not be covered by it."""
    retry: Mapped[list[str] | None] = mapped_column(JsonValue)
    window_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """The sync window as the last pass saw it: what time brought in since is looked for."""
    remote_location: Mapped[str | None] = mapped_column(Text)
    """Where the binding's linked items live (``Connector.location``)."""
    last_pass_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_result: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_counts: Mapped[dict[str, int] | None] = mapped_column(JsonValue)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SyncConflictRow(Base):
    __tablename__ = "sync_conflicts"
    __table_args__ = (Index("ix_sync_conflicts_pending", "binding", "resolution"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    binding: Mapped[str] = mapped_column(String(128))
    activity_id: Mapped[str] = mapped_column(String(255))
    ref: Mapped[str | None] = mapped_column(Text)
    policy: Mapped[str] = mapped_column(String(16))
    fields: Mapped[list[str]] = mapped_column(JsonValue)
    crm_version: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    remote_version: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    base_version: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    resolution: Mapped[str] = mapped_column(String(16))
    """crm, remote, merged (settled by the policy), pending (manual), kept-crm / kept-remote (by hand)."""
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SyncErrorRow(Base):
    __tablename__ = "sync_errors"
    __table_args__ = (UniqueConstraint("binding", "item", name="uq_sync_errors_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    binding: Mapped[str] = mapped_column(String(128))
    item: Mapped[str] = mapped_column(String(1024))
    message: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SyncPassRow(Base):
    """One pass of one binding, by one worker: the record that shows passes never overlap."""

    __tablename__ = "sync_passes"
    __table_args__ = (Index("ix_sync_passes_binding", "binding", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    binding: Mapped[str] = mapped_column(String(128))
    worker: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    result: Mapped[str | None] = mapped_column(String(16))
    counts: Mapped[dict[str, int] | None] = mapped_column(JsonValue)
    error: Mapped[str | None] = mapped_column(Text)


class SyncWorkerRow(Base):
    """A running ``syncd run`` process and its heartbeat; the live ones share the bindings."""

    __tablename__ = "sync_workers"

    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
