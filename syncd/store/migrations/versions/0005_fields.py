"""The activity fields real calendars and the seed CRMs carry: added occurrences (RDATE) and further
RRULEs, sensitivity, show-as, categories, attachments, the CRM's own extra fields, an organizer
who is not the owner and the VTIMEZONE of a calendar's own time zone; participants of kind resource
(a room, equipment) and group.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

The new columns are plain and nullable: a CRM writing its own SQL that never heard of them keeps
working, and syncd's rules (not CHECK constraints, which SQLite could only add by rebuilding the
activities table and its triggers) decide which values are valid. Widening the participant kinds
does need a new CHECK: on SQLite that rebuilds ``activity_participants``, which drops its triggers,
so they are created again here exactly as revision 0001 wrote them.
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from syncd.store.types import JsonValue

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("rdates", JsonValue),
    ("extra_rrules", JsonValue),
    ("sensitivity", sa.String(16)),
    ("show_as", sa.String(16)),
    ("categories", JsonValue),
    ("attachments", JsonValue),
    ("extra", JsonValue),
    ("organizer", JsonValue),
    ("timezone_definition", sa.Text),
)
_KINDS_OLD = "kind IN ('user', 'contact', 'account', 'external')"
_KINDS_NEW = "kind IN ('user', 'contact', 'account', 'external', 'resource', 'group')"

_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
# Revision 0001's triggers on activity_participants, verbatim (frozen there, so repeated here).
_SQLITE_PARTICIPANT_TRIGGERS = [
    f"""CREATE TRIGGER activity_participants_log_insert AFTER INSERT ON activity_participants
        BEGIN
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT NEW.activity_id, 'upsert', {_SQLITE_NOW}
                WHERE EXISTS (SELECT 1 FROM activities WHERE id = NEW.activity_id);
        END""",
    f"""CREATE TRIGGER activity_participants_log_update AFTER UPDATE ON activity_participants
        BEGIN
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT OLD.activity_id, 'upsert', {_SQLITE_NOW}
                WHERE OLD.activity_id IS NOT NEW.activity_id
                    AND EXISTS (SELECT 1 FROM activities WHERE id = OLD.activity_id);
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT NEW.activity_id, 'upsert', {_SQLITE_NOW}
                WHERE EXISTS (SELECT 1 FROM activities WHERE id = NEW.activity_id);
        END""",
    f"""CREATE TRIGGER activity_participants_log_delete AFTER DELETE ON activity_participants
        BEGIN
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT OLD.activity_id, 'upsert', {_SQLITE_NOW}
                WHERE EXISTS (SELECT 1 FROM activities WHERE id = OLD.activity_id);
        END""",
]


def _participant_kinds(check: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        with warnings.catch_warnings():
            # The rebuild reflects the tables the participants refer to, whose e-mail indexes (on
            # lower(email)) SQLAlchemy cannot reflect: a warning on every upgrade, about tables this
            # step leaves alone.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
            with op.batch_alter_table("activity_participants", recreate="always") as batch:
                batch.drop_constraint("ck_participants_kind", type_="check")
                batch.create_check_constraint("ck_participants_kind", check)
        for statement in _SQLITE_PARTICIPANT_TRIGGERS:
            op.execute(statement)
    else:
        op.drop_constraint("ck_participants_kind", "activity_participants", type_="check")
        op.create_check_constraint("ck_participants_kind", "activity_participants", check)


def upgrade() -> None:
    with op.batch_alter_table("activities") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    _participant_kinds(_KINDS_NEW)


def downgrade() -> None:
    op.execute("DELETE FROM activity_participants WHERE kind IN ('resource', 'group')")
    _participant_kinds(_KINDS_OLD)
    # Not batch mode: on SQLite that rebuilds the table, whose DROP would cascade to every participant.
    for name, _type in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE activities DROP COLUMN {name}")
