"""Activities, the people they involve, and the change log the triggers keep.

Revision ID: 0001
Revises:
Create Date: 2026-05-20

The change log is written by database triggers, not by syncd, so that a CRM writing plain SQL is
tracked exactly like syncd's own writes. Every INSERT/UPDATE/DELETE of an activity, and of its
participants or regarding links, appends a row to ``activity_changes``; a reader keeps the last
``seq`` it has seen as its cursor. The trigger code below is frozen with this revision on purpose:
a later schema change that needs other triggers drops and recreates them in its own revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from syncd.store.types import JsonValue, UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Key of the PostgreSQL advisory lock that orders change-log writers (any constant unique to syncd).
CHANGE_LOG_LOCK = 7_316_455_098_101

_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"

# SQLite cannot assign NEW in a trigger, so "keep updated_at current" is a nested UPDATE from an
# AFTER trigger. Only UPDATEs that change updated_at are logged; the nested one always does (it moves
# updated_at forward by at least a millisecond), so each statement is logged exactly once. SQLite's
# default recursive_triggers=OFF keeps the touch trigger from firing on its own UPDATE.
_SQLITE = [
    f"""CREATE TRIGGER activities_log_insert AFTER INSERT ON activities
    BEGIN
        INSERT INTO activity_changes (activity_id, op, changed_at) VALUES (NEW.id, 'upsert', {_SQLITE_NOW});
    END""",
    f"""CREATE TRIGGER activities_log_update AFTER UPDATE ON activities
    WHEN NEW.updated_at IS NOT OLD.updated_at
    BEGIN
        INSERT INTO activity_changes (activity_id, op, changed_at)
            SELECT OLD.id, 'delete', {_SQLITE_NOW} WHERE OLD.id IS NOT NEW.id;
        INSERT INTO activity_changes (activity_id, op, changed_at) VALUES (NEW.id, 'upsert', {_SQLITE_NOW});
    END""",
    f"""CREATE TRIGGER activities_touch AFTER UPDATE ON activities
    WHEN NEW.updated_at IS OLD.updated_at
    BEGIN
        INSERT INTO activity_changes (activity_id, op, changed_at)
            SELECT OLD.id, 'delete', {_SQLITE_NOW} WHERE OLD.id IS NOT NEW.id;
        UPDATE activities SET updated_at = CASE
            WHEN OLD.updated_at IS NULL OR julianday('now') > julianday(OLD.updated_at) THEN {_SQLITE_NOW}
            ELSE strftime('%Y-%m-%d %H:%M:%f', OLD.updated_at, '+0.001 seconds')
        END
        WHERE id = NEW.id;
    END""",
    f"""CREATE TRIGGER activities_log_delete AFTER DELETE ON activities
    BEGIN
        INSERT INTO activity_changes (activity_id, op, changed_at) VALUES (OLD.id, 'delete', {_SQLITE_NOW});
    END""",
]

# A participant or regarding row logs its activity as changed, but only while the activity exists:
# the cascade of an activity's DELETE must not log an 'upsert' after the 'delete'.
for _table in ("activity_participants", "activity_regarding"):
    _SQLITE += [
        f"""CREATE TRIGGER {_table}_log_insert AFTER INSERT ON {_table}
        BEGIN
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT NEW.activity_id, 'upsert', {_SQLITE_NOW}
                WHERE EXISTS (SELECT 1 FROM activities WHERE id = NEW.activity_id);
        END""",
        f"""CREATE TRIGGER {_table}_log_update AFTER UPDATE ON {_table}
        BEGIN
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT OLD.activity_id, 'upsert', {_SQLITE_NOW}
                WHERE OLD.activity_id IS NOT NEW.activity_id
                    AND EXISTS (SELECT 1 FROM activities WHERE id = OLD.activity_id);
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT NEW.activity_id, 'upsert', {_SQLITE_NOW}
                WHERE EXISTS (SELECT 1 FROM activities WHERE id = NEW.activity_id);
        END""",
        f"""CREATE TRIGGER {_table}_log_delete AFTER DELETE ON {_table}
        BEGIN
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT OLD.activity_id, 'upsert', {_SQLITE_NOW}
                WHERE EXISTS (SELECT 1 FROM activities WHERE id = OLD.activity_id);
        END""",
    ]

# PostgreSQL hands out sequence values at INSERT time, but transactions commit in any order: a reader
# could see seq 8 committed, move its cursor to 8, and never see seq 7 that commits a moment later.
# So every writer of the tracked tables first takes one transaction-scoped advisory lock (in a BEFORE
# STATEMENT trigger, i.e. before it locks any row, which keeps the lock order the same for everyone
# and avoids deadlocks). The lock is held until commit, so no other transaction can take a seq before
# this one is committed: commit order == seq order. The price is that writers of activities are
# serialized, which a CRM's activity writes tolerate easily.
_PG = [
    f"""CREATE FUNCTION syncd_change_log_lock() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({CHANGE_LOG_LOCK});
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION activities_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') AND (TG_OP = 'DELETE' OR OLD.id IS DISTINCT FROM NEW.id) THEN
            INSERT INTO activity_changes (activity_id, op, changed_at) VALUES (OLD.id, 'delete', clock_timestamp());
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO activity_changes (activity_id, op, changed_at) VALUES (NEW.id, 'upsert', clock_timestamp());
        END IF;
        RETURN NULL;
    END $$""",
    # PostgreSQL can assign NEW in a BEFORE trigger: no nested UPDATE, nothing logged twice.
    """CREATE FUNCTION activities_touch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
            NEW.updated_at := greatest(clock_timestamp(), OLD.updated_at + interval '1 microsecond');
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE FUNCTION activity_children_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT OLD.activity_id, 'upsert', clock_timestamp()
                WHERE (TG_OP = 'DELETE' OR OLD.activity_id IS DISTINCT FROM NEW.activity_id)
                    AND EXISTS (SELECT 1 FROM activities WHERE id = OLD.activity_id);
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO activity_changes (activity_id, op, changed_at)
                SELECT NEW.activity_id, 'upsert', clock_timestamp()
                WHERE EXISTS (SELECT 1 FROM activities WHERE id = NEW.activity_id);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER activities_touch BEFORE UPDATE ON activities
        FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION activities_touch()""",
    """CREATE TRIGGER activities_log_insert AFTER INSERT ON activities
        FOR EACH ROW EXECUTE FUNCTION activities_log_change()""",
    """CREATE TRIGGER activities_log_update AFTER UPDATE ON activities
        FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION activities_log_change()""",
    """CREATE TRIGGER activities_log_delete AFTER DELETE ON activities
        FOR EACH ROW EXECUTE FUNCTION activities_log_change()""",
]
for _table in ("activities", "activity_participants", "activity_regarding"):
    _PG.append(
        f"""CREATE TRIGGER {_table}_lock BEFORE INSERT OR UPDATE OR DELETE ON {_table}
        FOR EACH STATEMENT EXECUTE FUNCTION syncd_change_log_lock()"""
    )
for _table in ("activity_participants", "activity_regarding"):
    _PG.append(
        f"""CREATE TRIGGER {_table}_log_change AFTER INSERT OR UPDATE OR DELETE ON {_table}
        FOR EACH ROW EXECUTE FUNCTION activity_children_log_change()"""
    )

_PG_DROP = [
    "DROP FUNCTION IF EXISTS activity_children_log_change() CASCADE",
    "DROP FUNCTION IF EXISTS activities_touch() CASCADE",
    "DROP FUNCTION IF EXISTS activities_log_change() CASCADE",
    "DROP FUNCTION IF EXISTS syncd_change_log_lock() CASCADE",
]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("timezone", sa.String(64)),
    )
    op.create_index("uq_users_email_ci", "users", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(64)),
    )
    op.create_index("ix_accounts_email_ci", "accounts", [sa.text("lower(email)")])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(320)),
        sa.Column("name", sa.Text()),
        sa.Column("phone", sa.String(64)),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="SET NULL")),
    )
    op.create_index("uq_contacts_email_ci", "contacts", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False, unique=True),
    )
    op.create_table(
        "activities",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("start_at", UtcDateTime()),
        sa.Column("end_at", UtcDateTime()),
        sa.Column("start_date", sa.Date()),
        sa.Column("end_date", sa.Date()),
        sa.Column("timezone", sa.String(64)),
        sa.Column("due_at", UtcDateTime()),
        sa.Column("due_date", sa.Date()),
        sa.Column("completed_at", UtcDateTime()),
        sa.Column("status", sa.Text()),
        sa.Column("type", sa.Text()),
        sa.Column("priority", sa.Text()),
        sa.Column("direction", sa.String(16)),
        sa.Column("location", sa.Text()),
        sa.Column("place", sa.Text()),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="SET NULL")),
        sa.Column("reminder_minutes", sa.Integer()),
        sa.Column("rrule", sa.Text()),
        sa.Column("exdates", JsonValue),
        sa.Column("overrides", JsonValue),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("parent_id", sa.String(255)),
        sa.Column("close_reason", sa.Text()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime()),
        sa.CheckConstraint(
            "kind IN ('appointment', 'call', 'task', 'mailing', 'email')", name="ck_activities_kind"
        ),
        sa.CheckConstraint("direction IN ('inbound', 'outbound')", name="ck_activities_direction"),
        sa.CheckConstraint(
            "(all_day AND start_at IS NULL AND end_at IS NULL AND due_at IS NULL)"
            " OR (NOT all_day AND start_date IS NULL AND end_date IS NULL AND due_date IS NULL)",
            name="ck_activities_all_day_columns",
        ),
    )
    op.create_index("ix_activities_owner_id", "activities", ["owner_id"])
    op.create_index("ix_activities_parent_id", "activities", ["parent_id"])
    op.create_table(
        "activity_participants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "activity_id", sa.String(255), sa.ForeignKey("activities.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("contact_id", sa.Integer(), sa.ForeignKey("contacts.id", ondelete="SET NULL")),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="SET NULL")),
        sa.Column("email", sa.String(320)),
        sa.Column("name", sa.Text()),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("response", sa.String(16), nullable=False),
        sa.UniqueConstraint("activity_id", "position", name="uq_activity_participants_position"),
        sa.CheckConstraint("kind IN ('user', 'contact', 'account', 'external')", name="ck_participants_kind"),
        sa.CheckConstraint("role IN ('required', 'optional')", name="ck_participants_role"),
        sa.CheckConstraint(
            "response IN ('accepted', 'declined', 'tentative', 'needs-action')", name="ck_participants_response"
        ),
    )
    op.create_index("ix_activity_participants_user_id", "activity_participants", ["user_id"])
    op.create_table(
        "activity_regarding",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "activity_id", sa.String(255), sa.ForeignKey("activities.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref_id", sa.String(255), nullable=False),
        sa.Column("name", sa.Text()),
        sa.UniqueConstraint("activity_id", "position", name="uq_activity_regarding_position"),
        sa.CheckConstraint(
            "kind IN ('account', 'contact', 'opportunity', 'project', 'activity')", name="ck_regarding_kind"
        ),
    )
    op.create_index("ix_activity_regarding_ref", "activity_regarding", ["kind", "ref_id"])
    op.create_table(
        "activity_changes",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("activity_id", sa.String(255), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("op IN ('upsert', 'delete')", name="ck_activity_changes_op"),
        sqlite_autoincrement=True,
    )
    statements = {"sqlite": _SQLITE, "postgresql": _PG}.get(op.get_bind().dialect.name)
    if statements is None:
        raise NotImplementedError(f"no change-tracking triggers for {op.get_bind().dialect.name}")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_DROP:
            op.execute(statement)
    # On SQLite the triggers go with their tables.
    for table in (
        "activity_changes",
        "activity_regarding",
        "activity_participants",
        "activities",
        "projects",
        "contacts",
        "accounts",
        "users",
    ):
        op.drop_table(table)
