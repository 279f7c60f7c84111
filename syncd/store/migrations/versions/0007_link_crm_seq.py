"""The change-log entry a link's activity stood at when syncd itself wrote the two together, so that a
binding does not read its own writes back as CRM changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

A pass that writes activities into the CRM (a pull) logs changes after its own cursor; the next pass
read them back, loaded each activity and found nothing to do: after a mass first sync, that made the
next cycle of a daemon several times the cost of a steady one. ``sync_links.crm_seq`` is the newest
log entry of the activity, read in the transaction that wrote the activity and its link; an entry up
to it is the link's own write and concerns the binding no more. Links written before this revision
have none: their entries are read as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_links") as batch:
        batch.add_column(sa.Column("crm_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_links") as batch:
        batch.drop_column("crm_seq")
