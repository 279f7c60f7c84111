"""The store's tables, as SQLAlchemy typed declarative classes.

Only :mod:`syncd.store.repository` and :mod:`syncd.store.changefeed` use these rows; the rest of
syncd speaks :mod:`syncd.model`. The schema itself is created by the migrations in
``syncd/store/migrations`` (which also add the change-tracking triggers); a test checks that the
two agree.

A timed activity uses ``start_at``/``end_at``/``due_at`` (UTC instants); an all-day one uses
``start_date``/``end_date``/``due_date``. Keeping them apart lets both databases index and compare
them natively and makes an all-day date come back as a ``date`` without guessing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from syncd.store.types import JsonValue, UtcDateTime


class Base(DeclarativeBase):
    """Declarative base of every syncd table (the sync engine's tables join it in their own module)."""


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email_ci", func.lower("email"), unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(String(64))


class AccountRow(Base):
    __tablename__ = "accounts"
    __table_args__ = (Index("ix_accounts_email_ci", func.lower("email")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))


class ContactRow(Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("uq_contacts_email_ci", func.lower("email"), unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(64))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))

    account: Mapped[AccountRow | None] = relationship()


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)


class ActivityRow(Base):
    __tablename__ = "activities"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('appointment', 'call', 'task', 'mailing', 'email')", name="ck_activities_kind"
        ),
        CheckConstraint("direction IN ('inbound', 'outbound')", name="ck_activities_direction"),
        CheckConstraint(
            "(all_day AND start_at IS NULL AND end_at IS NULL AND due_at IS NULL)"
            " OR (NOT all_day AND start_date IS NULL AND end_date IS NULL AND due_date IS NULL)",
            name="ck_activities_all_day_columns",
        ),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str | None] = mapped_column(Text)
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    start_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    timezone: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    due_date: Mapped[date | None] = mapped_column(Date)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str | None] = mapped_column(Text)
    direction: Mapped[str | None] = mapped_column(String(16))
    location: Mapped[str | None] = mapped_column(Text)
    place: Mapped[str | None] = mapped_column(Text)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    reminder_minutes: Mapped[int | None] = mapped_column(Integer)
    rrule: Mapped[str | None] = mapped_column(Text)
    exdates: Mapped[list[str] | None] = mapped_column(JsonValue)
    overrides: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonValue)
    rdates: Mapped[list[str] | None] = mapped_column(JsonValue)
    extra_rrules: Mapped[list[str] | None] = mapped_column(JsonValue)
    # Revision 0005's fields: plain columns, their values checked by syncd's rules (see the migration).
    sensitivity: Mapped[str | None] = mapped_column(String(16))
    show_as: Mapped[str | None] = mapped_column(String(16))
    categories: Mapped[list[str] | None] = mapped_column(JsonValue)
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonValue)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    organizer: Mapped[dict[str, Any] | None] = mapped_column(JsonValue)
    """Who organizes the activity when it is not the owner: ``{"kind", "email", "name"}``."""
    timezone_definition: Mapped[str | None] = mapped_column(Text)
    """The VTIMEZONE of ``timezone`` when that is a calendar's own zone, not an IANA name."""
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    """The activity this one follows up; not a foreign key, since a CRM may point outside the store."""
    close_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The triggers set it when an UPDATE leaves it alone; FetchedValue makes the ORM re-read it.
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, server_onupdate=FetchedValue())

    owner: Mapped[UserRow] = relationship()
    project: Mapped[ProjectRow | None] = relationship()
    participants: Mapped[list[ParticipantRow]] = relationship(
        order_by="ParticipantRow.position", cascade="all, delete-orphan", passive_deletes=True
    )
    regarding: Mapped[list[RegardingRow]] = relationship(
        order_by="RegardingRow.position", cascade="all, delete-orphan", passive_deletes=True
    )


class ParticipantRow(Base):
    __tablename__ = "activity_participants"
    __table_args__ = (
        UniqueConstraint("activity_id", "position", name="uq_activity_participants_position"),
        CheckConstraint(
            "kind IN ('user', 'contact', 'account', 'external', 'resource', 'group')", name="ck_participants_kind"
        ),
        CheckConstraint("role IN ('required', 'optional')", name="ck_participants_role"),
        CheckConstraint(
            "response IN ('accepted', 'declined', 'tentative', 'needs-action')", name="ck_participants_response"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[str] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    # E-mail and name are kept as the activity states them, so an export gives back what was imported.
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), default="required")
    response: Mapped[str] = mapped_column(String(16), default="needs-action")

    user: Mapped[UserRow | None] = relationship()
    contact: Mapped[ContactRow | None] = relationship()
    account: Mapped[AccountRow | None] = relationship()


class RegardingRow(Base):
    __tablename__ = "activity_regarding"
    __table_args__ = (
        UniqueConstraint("activity_id", "position", name="uq_activity_regarding_position"),
        CheckConstraint(
            "kind IN ('account', 'contact', 'opportunity', 'project', 'activity')", name="ck_regarding_kind"
        ),
        Index("ix_activity_regarding_ref", "kind", "ref_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[str] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(Text)


class ActivityChangeRow(Base):
    """One entry of the change log the triggers write; ``seq`` is the change feed's cursor."""

    __tablename__ = "activity_changes"
    __table_args__ = (
        CheckConstraint("op IN ('upsert', 'delete')", name="ck_activity_changes_op"),
        # A binding finds the entries of the activities it has links for (changefeed.concerning).
        Index("ix_activity_changes_activity", "activity_id", "seq"),
        # AUTOINCREMENT: SQLite never hands out a seq again, even after the newest rows are gone.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(255))
    op: Mapped[str] = mapped_column(String(8))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ActivityChangeUserRow(Base):
    """A change-log entry by a CRM user it concerns (owner or participant), written by a trigger on
    ``activity_changes`` (migration 0006): a binding reads its owner's entries by this index."""

    __tablename__ = "activity_change_users"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
