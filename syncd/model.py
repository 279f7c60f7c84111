"""syncd's own domain objects: what an activity is, independent of SQL, iCalendar and EWS.

Everything at the core (engine, mapping, exchange format) speaks these frozen dataclasses; the ORM rows
(``syncd.store``) and the protocol objects (``syncd.connectors``) are translated to and from them at the
edges.

Time conventions, relied on everywhere:

* A timed activity has ``start``/``end`` as timezone-aware ``datetime`` values and ``timezone`` as an
  IANA name (``Europe/Amsterdam``) or ``None`` (then UTC is the display zone); or, for a zone a calendar
  defined that no IANA zone follows, its TZID with the VTIMEZONE in ``timezone_definition``.
* An all-day activity has ``start``/``end`` as ``date`` values; ``end`` is exclusive as in RFC 5545
  (a one-day event on 22 Nov has start 2026-11-22, end 2026-11-23). ``end == start`` is accepted and
  read as one day, because CRMs often write it that way.
* A task may have ``due`` (aware ``datetime``, or ``date`` when all-day) and ``completed_at``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    APPOINTMENT = "appointment"
    CALL = "call"
    TASK = "task"
    MAILING = "mailing"
    EMAIL = "email"


#: Kinds that appear in a calendar; mailings and e-mails are logged in the CRM but never synced.
SYNCED_KINDS = frozenset({Kind.APPOINTMENT, Kind.CALL, Kind.TASK})
#: Kinds shown as calendar events (VEVENT / CalendarItem); tasks are to-dos (VTODO / Task).
EVENT_KINDS = frozenset({Kind.APPOINTMENT, Kind.CALL})


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ParticipantKind(StrEnum):
    USER = "user"
    CONTACT = "contact"
    ACCOUNT = "account"
    EXTERNAL = "external"
    RESOURCE = "resource"
    """A room or equipment reserved for the activity (CUTYPE=ROOM/RESOURCE, an EWS resource)."""
    GROUP = "group"
    """A distribution list invited as one attendee (CUTYPE=GROUP)."""


class Role(StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"


class Response(StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TENTATIVE = "tentative"
    NEEDS_ACTION = "needs-action"


class RegardingKind(StrEnum):
    ACCOUNT = "account"
    CONTACT = "contact"
    OPPORTUNITY = "opportunity"
    PROJECT = "project"
    ACTIVITY = "activity"


class Sensitivity(StrEnum):
    """Who may see the details (iCalendar CLASS, EWS Sensitivity)."""

    NORMAL = "normal"
    PRIVATE = "private"
    CONFIDENTIAL = "confidential"


class ShowAs(StrEnum):
    """How the time shows in free/busy (TRANSP and X-MICROSOFT-CDO-BUSYSTATUS, EWS LegacyFreeBusyStatus)."""

    BUSY = "busy"
    FREE = "free"
    TENTATIVE = "tentative"
    OUT_OF_OFFICE = "out_of_office"


JsonScalar = str | int | float | bool | None
"""A value of :attr:`Activity.extra`: the CRM's own fields are kept as plain JSON scalars."""

Moment = datetime | date
"""A point in time: aware ``datetime`` for timed values, ``date`` for all-day ones."""


@dataclass(frozen=True, slots=True)
class Participant:
    kind: ParticipantKind
    email: str | None = None
    name: str | None = None
    role: Role = Role.REQUIRED
    response: Response = Response.NEEDS_ACTION

    @property
    def key(self) -> str:
        """Identity within one activity: the e-mail (case-insensitive), else kind and name."""
        if self.email:
            return self.email.casefold()
        return f"{self.kind}:{self.name or ''}"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A link to a file (ATTACH;VALUE=URI); a file's bytes are not carried."""

    url: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Regarding:
    """A link to the business object an activity regards (account, contact, opportunity, ...)."""

    kind: RegardingKind
    id: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Override:
    """One occurrence of a series that differs from the rule.

    ``recurrence_id`` is the occurrence's original start (as the rule generates it). A field left
    ``None`` is inherited from the series.
    """

    recurrence_id: Moment
    start: Moment | None = None
    end: Moment | None = None
    subject: str | None = None
    description: str | None = None
    location: str | None = None
    status: str | None = None
    reminder_minutes: int | None = None
    """This occurrence's own reminder, in minutes before its start (negative: after it)."""
    reminder_off: bool = False
    """This occurrence rings no reminder, though the series does (``None`` above cannot say that)."""
    sensitivity: Sensitivity | None = None
    show_as: ShowAs | None = None
    this_and_future: bool = False
    """RFC 5545 RANGE=THISANDFUTURE: the change applies to this occurrence and every later one (the same
    move on the series' wall clock, the same length, its texts and status), until a later range override;
    a later single override wins for its occurrence."""


@dataclass(frozen=True, slots=True)
class Recurrence:
    """An RFC 5545 RRULE value (without the ``RRULE:`` prefix), excluded dates and overrides.

    ``extra_rrules`` are the second and later RRULEs of an item (RFC 5545 allows several; their
    occurrences add up) and ``rdates`` the added occurrences (RDATE), each a start like ``exdates``.
    """

    rrule: str
    exdates: tuple[Moment, ...] = ()
    overrides: tuple[Override, ...] = ()
    rdates: tuple[Moment, ...] = ()
    extra_rrules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Activity:
    id: str
    kind: Kind
    subject: str
    owner: str
    """The owner's e-mail: the CRM user whose calendar shows the activity."""
    description: str | None = None
    start: Moment | None = None
    end: Moment | None = None
    all_day: bool = False
    timezone: str | None = None
    timezone_definition: str | None = None
    """The VTIMEZONE text of ``timezone`` when that is a calendar's own zone, not an IANA name: its rules,
    kept so that a series in it runs on its own days and hours (``None`` for an IANA zone)."""
    due: Moment | None = None
    completed_at: datetime | None = None
    status: str | None = None
    type: str | None = None
    priority: str | None = None
    direction: Direction | None = None
    location: str | None = None
    place: str | None = None
    project: str | None = None
    reminder_minutes: int | None = None
    """Minutes before the start (a task without one: before its due); negative rings after it."""
    recurrence: Recurrence | None = None
    participants: tuple[Participant, ...] = ()
    regarding: tuple[Regarding, ...] = ()
    parent_id: str | None = None
    close_reason: str | None = None
    sensitivity: Sensitivity | None = None
    """``None``: not stated (a calendar shows it as normal)."""
    show_as: ShowAs | None = None
    """``None``: as the status shows it (the ``[mapping]`` status table decides)."""
    categories: tuple[str, ...] = ()
    """The CRM's own categories (the seeds' "dictionaries"), shown beside the type's category."""
    attachments: tuple[Attachment, ...] = ()
    extra: Mapping[str, JsonScalar] = field(default_factory=dict)
    """The CRM's own fields (amount, product, ...), carried unseen by the calendar user."""
    organizer: Participant | None = None
    """Who organizes it when that is not the owner (an invitation from outside the CRM); ``None``: the owner."""
    updated_at: datetime | None = None
    created_at: datetime | None = None

    # Any, not object: dataclasses.replace's signature is the fields' own, which one ``**changes`` can't
    # spell; it still refuses an unknown field at run time.
    def replace(self, **changes: Any) -> Activity:
        return dataclasses.replace(self, **changes)

    @property
    def is_event(self) -> bool:
        return self.kind in EVENT_KINDS

    @property
    def effective_end(self) -> Moment | None:
        """``end`` with the all-day ``end == start`` shorthand expanded to the exclusive next day."""
        if self.all_day and isinstance(self.start, date) and self.end == self.start:
            return self.start + timedelta(days=1)
        return self.end


#: Fields a sync compares and merges; bookkeeping (ids, timestamps) is not content.
CONTENT_FIELDS: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(Activity)
    if f.name not in {"id", "updated_at", "created_at"}
)


@dataclass(frozen=True, slots=True)
class CrmUser:
    email: str
    name: str | None = None
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    email: str | None
    name: str | None = None
    phone: str | None = None
    account: str | None = None
    """Name of the account (company) the contact belongs to."""


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Directory:
    """What the mapping needs to know of the CRM's people, to match inbound attendees.

    Keys are casefolded e-mails; values are display names (or ``None``).
    """

    users: Mapping[str, str | None] = field(default_factory=dict)
    contacts: Mapping[str, str | None] = field(default_factory=dict)
    accounts: Mapping[str, str | None] = field(default_factory=dict)

    def classify(self, email: str) -> ParticipantKind:
        key = email.casefold()
        if key in self.users:
            return ParticipantKind.USER
        if key in self.contacts:
            return ParticipantKind.CONTACT
        if key in self.accounts:
            return ParticipantKind.ACCOUNT
        return ParticipantKind.EXTERNAL
