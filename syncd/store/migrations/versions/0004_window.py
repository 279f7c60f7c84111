"""The sync window a binding last looked at, so activities that time brings into it are found; and
the calendar its links point into, so that a binding moved to another calendar is noticed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from syncd.store.types import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_bindings") as batch:
        batch.add_column(sa.Column("window_start", UtcDateTime, nullable=True))
        batch.add_column(sa.Column("window_end", UtcDateTime, nullable=True))
        batch.add_column(sa.Column("remote_location", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_bindings") as batch:
        batch.drop_column("remote_location")
        batch.drop_column("window_end")
        batch.drop_column("window_start")
