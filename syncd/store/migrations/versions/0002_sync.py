"""The sync engine's tables: links, binding state, conflicts, item errors, passes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from syncd.store.types import JsonValue, UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_links",
        sa.Column("binding", sa.String(128), primary_key=True),
        sa.Column("activity_id", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.Text()),
        sa.Column("etag", sa.Text()),
        sa.Column("crm_fp", sa.String(64)),
        sa.Column("remote_fp", sa.String(64)),
        sa.Column("base", JsonValue),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_sync_links_ref", "sync_links", ["binding", "ref"])
    op.create_table(
        "sync_bindings",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("crm_cursor", sa.BigInteger()),
        sa.Column("remote_state", sa.Text()),
        sa.Column("remote_state_at", UtcDateTime),
        sa.Column("retry", JsonValue),
        sa.Column("last_pass_at", UtcDateTime),
        sa.Column("last_success_at", UtcDateTime),
        sa.Column("last_result", sa.String(16)),
        sa.Column("last_error", sa.Text()),
        sa.Column("last_counts", JsonValue),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires", UtcDateTime),
    )
    op.create_table(
        "sync_conflicts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("binding", sa.String(128), nullable=False),
        sa.Column("activity_id", sa.String(255), nullable=False),
        sa.Column("ref", sa.Text()),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("fields", JsonValue, nullable=False),
        sa.Column("crm_version", JsonValue),
        sa.Column("remote_version", JsonValue),
        sa.Column("base_version", JsonValue),
        sa.Column("resolution", sa.String(16), nullable=False),
        sa.Column("detected_at", UtcDateTime, nullable=False),
        sa.Column("resolved_at", UtcDateTime),
    )
    op.create_index("ix_sync_conflicts_pending", "sync_conflicts", ["binding", "resolution"])
    op.create_table(
        "sync_errors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("binding", sa.String(128), nullable=False),
        sa.Column("item", sa.String(1024), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", UtcDateTime, nullable=False),
        sa.Column("last_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("binding", "item", name="uq_sync_errors_item"),
    )
    op.create_table(
        "sync_passes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("binding", sa.String(128), nullable=False),
        sa.Column("worker", sa.String(128), nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime),
        sa.Column("result", sa.String(16)),
        sa.Column("counts", JsonValue),
        sa.Column("error", sa.Text()),
    )
    op.create_index("ix_sync_passes_binding", "sync_passes", ["binding", "started_at"])


def downgrade() -> None:
    for table in ("sync_passes", "sync_errors", "sync_conflicts", "sync_bindings", "sync_links"):
        op.drop_table(table)
