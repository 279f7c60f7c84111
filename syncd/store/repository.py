"""The only place where store rows become domain objects (:mod:`syncd.model`) and back.

Functions take a SQLAlchemy session and never commit: the caller owns the transaction. Reads load
participants and regarding links with ``selectinload`` (one extra query per batch, never per row).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Select, and_, bindparam, func, insert, literal, or_, select
from sqlalchemy.orm import Session, selectinload

from syncd.activity_json import (
    format_moment,
    organizer_from_json,
    organizer_to_json,
    override_from_json,
    override_to_json,
    parse_moment,
)
from syncd.errors import RuleViolation, ValidationError
from syncd.model import (
    CONTENT_FIELDS,
    Account,
    Activity,
    Attachment,
    Contact,
    CrmUser,
    Direction,
    Directory,
    Kind,
    Participant,
    ParticipantKind,
    Recurrence,
    Regarding,
    RegardingKind,
    Response,
    Role,
    Sensitivity,
    ShowAs,
)
from syncd.store.db import table_of
from syncd.store.models import (
    AccountRow,
    ActivityRow,
    ContactRow,
    ParticipantRow,
    ProjectRow,
    RegardingRow,
    UserRow,
)
from syncd.store.rules import (
    DEFAULT_COMPLETED_STATUSES,
    check_activity,
    is_completed,
)

#: Ids per ``IN (...)`` query: well under every driver's bound-parameter limit.
CHUNK = 500

Window = tuple[datetime, datetime]
"""A half-open time range ``[start, end)`` of aware datetimes."""


class Saved(StrEnum):
    """What :func:`save_activity` did."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for ident in dict.fromkeys(ids):
        batch.append(ident)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _ci(column: Any, value: str) -> Any:
    """Case-insensitive e-mail match; the unique indexes are on ``lower(email)`` too.

    The database lowers both sides: SQLite's lower() (and PostgreSQL's in the C locale) folds only
    ASCII, so Python's ``ZOË@…``.lower() would never match the row ``ZOË@…`` it stands for."""
    return func.lower(column) == func.lower(literal(value))


def _ci_in(column: Any, values: Sequence[str], dialect: str) -> Any:
    """:func:`_ci` for many values. SQLite's lower() folds ASCII and nothing else, so an ASCII value
    is lowered here, as one list parameter: a lower() per value cost a pull's store writes a tenth of
    their time. PostgreSQL's lower() follows the database's locale (a Turkish one does not fold I to
    i), so there every value is lowered by the database."""
    if dialect != "sqlite":
        return func.lower(column).in_([func.lower(literal(v)) for v in values])
    plain = [v.lower() for v in values if v.isascii()]
    other = [func.lower(literal(v)) for v in values if not v.isascii()]
    if not other:
        return func.lower(column).in_(plain)
    return or_(func.lower(column).in_(plain), func.lower(column).in_(other))


# ------------------------------------------------------------------------------- rows -> domain


@cache
def _children() -> tuple[Any, ...]:
    # Loader options are immutable and cost ~0.5 ms to build: a pass that saves activities one by
    # one built them twice per item.
    return (
        selectinload(ActivityRow.owner),
        selectinload(ActivityRow.project),
        selectinload(ActivityRow.participants).selectinload(ParticipantRow.user),
        selectinload(ActivityRow.participants).selectinload(ParticipantRow.contact),
        selectinload(ActivityRow.participants).selectinload(ParticipantRow.account),
        selectinload(ActivityRow.regarding),
    )


def _with_children(query: Select[Any]) -> Select[Any]:
    return query.options(*_children())


def _participant(row: ParticipantRow) -> Participant:
    # A CRM writing plain SQL may only set the foreign key; the linked record then fills in. A row
    # that names someone keeps its own (even empty) name: syncd saved it so, and filling it in would
    # read back other than what was saved, a change the next pass would see.
    linked = row.user or row.contact or row.account
    names_nobody = row.email is None and row.name is None
    return Participant(
        kind=_enum(ParticipantKind, row.kind, row, "participants.kind"),
        email=row.email if row.email is not None else (linked.email if linked else None),
        name=linked.name if names_nobody and linked else row.name,
        role=_enum(Role, row.role, row, "participants.role"),
        response=_enum(Response, row.response, row, "participants.response"),
    )


E = TypeVar("E", bound=StrEnum)


def _enum(enum: type[E], value: str, row: Any, name: str) -> E:
    """A stored code as its enum; a value no version of syncd wrote is the row's fault, said so."""
    try:
        return enum(value)
    except ValueError:
        ident = getattr(row, "activity_id", None) or getattr(row, "id", "?")
        raise ValidationError(f'activity "{ident}": stored {name} "{value}" is none of syncd\'s values') from None


def _recurrence(row: ActivityRow) -> Recurrence | None:
    if row.rrule is None:
        return None
    try:
        exdates = tuple(parse_moment(text) for text in row.exdates or ())
        overrides = tuple(override_from_json(obj, all_day=row.all_day) for obj in row.overrides or ())
        rdates = tuple(parse_moment(text) for text in row.rdates or ())
        extra_rrules = tuple(_text(rule) for rule in row.extra_rrules or ())
    except (ValueError, TypeError, AttributeError, ValidationError) as exc:
        raise ValidationError(f'activity "{row.id}": stored recurrence is malformed: {exc}') from exc
    return Recurrence(row.rrule, exdates, overrides, rdates, extra_rrules)


def _list(value: object) -> list[Any]:
    """A JSON list column; a CRM's SQL that wrote a string there ("a,b") is refused, not read letter by letter."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{value!r} is not a JSON list")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def _fields_0005(row: ActivityRow) -> dict[str, Any]:
    """The fields of revision 0005, each column NULL for "none" (a CRM's SQL may never write them)."""
    try:
        categories = tuple(_text(c) for c in _list(row.categories))
        attachments = tuple(
            Attachment(_text(a["url"]), None if a.get("name") is None else _text(a["name"]))
            for a in _list(row.attachments)
        )
        if row.extra is not None and not isinstance(row.extra, dict):
            raise TypeError("extra must be a JSON object")
        extra = dict(row.extra or {})
        if not all(isinstance(k, str) and not isinstance(v, dict | list) for k, v in extra.items()):
            raise TypeError("extra must map names to scalars")
        organizer = organizer_from_json(row.organizer) if row.organizer is not None else None
    except (KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise ValidationError(f'activity "{row.id}": stored categories, attachments, extra or organizer '
                              f"are malformed: {exc}") from exc
    return {
        "sensitivity": _enum(Sensitivity, row.sensitivity, row, "sensitivity") if row.sensitivity else None,
        "show_as": _enum(ShowAs, row.show_as, row, "show_as") if row.show_as else None,
        "categories": categories,
        "attachments": attachments,
        "extra": extra,
        "organizer": organizer,
        "timezone_definition": row.timezone_definition,
    }


def to_activity(row: ActivityRow) -> Activity:
    """The domain object for a loaded row (its children loaded with :func:`_with_children`)."""
    if row.all_day:
        start: date | datetime | None = row.start_date
        end: date | datetime | None = row.end_date
        due: date | datetime | None = row.due_date
    else:
        start, end, due = row.start_at, row.end_at, row.due_at
    return Activity(
        id=row.id,
        kind=_enum(Kind, row.kind, row, "kind"),
        subject=row.subject,
        owner=row.owner.email,
        description=row.description,
        start=start,
        end=end,
        all_day=row.all_day,
        timezone=row.timezone,
        due=due,
        completed_at=row.completed_at,
        status=row.status,
        type=row.type,
        priority=row.priority,
        direction=_enum(Direction, row.direction, row, "direction") if row.direction else None,
        location=row.location,
        place=row.place,
        project=row.project.name if row.project else None,
        reminder_minutes=row.reminder_minutes,
        recurrence=_recurrence(row),
        participants=tuple(_participant(p) for p in row.participants),
        regarding=tuple(
            Regarding(_enum(RegardingKind, g.kind, g, "regarding.kind"), g.ref_id, g.name) for g in row.regarding
        ),
        parent_id=row.parent_id,
        close_reason=row.close_reason,
        updated_at=row.updated_at,
        created_at=row.created_at,
        **_fields_0005(row),
    )


# ------------------------------------------------------------------------------------- reads


def existing_ids(session: Session, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` the store holds, without reading their rows."""
    found: set[str] = set()
    for batch in _chunks(ids):
        found.update(session.scalars(select(ActivityRow.id).where(ActivityRow.id.in_(batch))))
    return found


def load_rows(session: Session, ids: Iterable[str]) -> dict[str, ActivityRow]:
    """The rows of the existing activities among ``ids``, children loaded, by id."""
    rows: dict[str, ActivityRow] = {}
    for batch in _chunks(ids):
        for row in session.scalars(_with_children(select(ActivityRow).where(ActivityRow.id.in_(batch)))):
            rows[row.id] = row
    return rows


def get_activity(session: Session, id: str) -> Activity | None:
    row = load_rows(session, [id]).get(id)
    return to_activity(row) if row else None


def get_activities(session: Session, ids: Iterable[str]) -> dict[str, Activity]:
    """The activities among ``ids`` that exist, by id (missing ids are simply absent)."""
    return {ident: to_activity(row) for ident, row in load_rows(session, ids).items()}


def iter_activities(session: Session) -> Iterator[Activity]:
    """Every activity, ordered by id, read in batches (keyset paging, so memory stays flat)."""
    last: str | None = None
    while True:
        query = select(ActivityRow).order_by(ActivityRow.id).limit(CHUNK)
        if last is not None:
            query = query.where(ActivityRow.id > last)
        rows = list(session.scalars(_with_children(query)))
        if not rows:
            return
        for row in rows:
            yield to_activity(row)
        last = rows[-1].id
        session.expunge_all()


def list_activity_ids(
    session: Session, *, owner: str | None = None, kinds: Collection[Kind] | None = None
) -> list[str]:
    query = select(ActivityRow.id).order_by(ActivityRow.id)
    if owner is not None:
        query = query.join(ActivityRow.owner).where(_ci(UserRow.email, owner))
    if kinds is not None:
        query = query.where(ActivityRow.kind.in_([str(k) for k in kinds]))
    return list(session.scalars(query))


def _concerning(user_id: int, email: str) -> Any:
    """Owned by the user, or the user takes part (linked by id, or named by e-mail in plain SQL)."""
    takes_part = select(ParticipantRow.activity_id).where(
        ParticipantRow.kind == "user",
        or_(ParticipantRow.user_id == user_id, _ci(ParticipantRow.email, email)),
    )
    return or_(ActivityRow.owner_id == user_id, ActivityRow.id.in_(takes_part))


def _in_window(window: Window) -> Any:
    """Overlaps ``window``; a series counts from its first start on (its end is the rule's business).

    All-day dates have no zone (their day depends on the calendar), so they match by date with a
    day's margin on each side. Undated activities (a task without start) always match.
    """
    w_start, w_end = window
    first_day = w_start.astimezone(UTC).date() - timedelta(days=1)
    last_day = w_end.astimezone(UTC).date() + timedelta(days=1)
    timed = and_(
        ActivityRow.start_at < w_end,
        or_(ActivityRow.rrule.is_not(None), func.coalesce(ActivityRow.end_at, ActivityRow.start_at) >= w_start),
    )
    all_day = and_(
        ActivityRow.start_date <= last_day,
        or_(
            ActivityRow.rrule.is_not(None),
            func.coalesce(ActivityRow.end_date, ActivityRow.start_date) >= first_day,
        ),
    )
    undated = and_(
        ActivityRow.start_at.is_(None),
        ActivityRow.start_date.is_(None),
        or_(
            and_(ActivityRow.due_at.is_(None), ActivityRow.due_date.is_(None)),
            and_(ActivityRow.due_at >= w_start, ActivityRow.due_at < w_end),
            ActivityRow.due_date.between(first_day, last_day),
        ),
    )
    return or_(timed, all_day, undated)


def activities_for_user(
    session: Session,
    email: str,
    kinds: Collection[Kind] | None = None,
    window: Window | None = None,
    ids: Iterable[str] | None = None,
) -> list[Activity]:
    """The activities that belong in ``email``'s calendar, ordered by id.

    That is: owned by the user, or with the user as a participant of kind user. ``kinds`` and
    ``window`` narrow it down; ``ids`` restricts it to given ids, which answers the engine's
    "which of these changed activities concern this user" in one pass.
    """
    return [to_activity(row) for row in activity_rows_for_user(session, email, kinds, window, ids)]


def activity_rows_for_user(
    session: Session,
    email: str,
    kinds: Collection[Kind] | None = None,
    window: Window | None = None,
    ids: Iterable[str] | None = None,
) -> list[ActivityRow]:
    """The rows behind :func:`activities_for_user`, children loaded: the engine turns each into an
    activity on its own, so that one row the CRM wrote wrongly costs only that activity."""
    user_id = session.scalar(select(UserRow.id).where(_ci(UserRow.email, email)))
    if user_id is None:
        return []
    query = select(ActivityRow).where(_concerning(user_id, email)).order_by(ActivityRow.id)
    if kinds is not None:
        query = query.where(ActivityRow.kind.in_([str(k) for k in kinds]))
    if window is not None:
        query = query.where(_in_window(window))
    if ids is None:
        return list(session.scalars(_with_children(query)))
    found: list[ActivityRow] = []
    for batch in _chunks(ids):
        found += session.scalars(_with_children(query.where(ActivityRow.id.in_(batch))))
    return sorted(found, key=lambda r: r.id)


def activity_ids_for_user(session: Session, email: str, kinds: Collection[Kind], window: Window) -> set[str]:
    """The ids of :func:`activities_for_user` in ``window``, without reading the rows."""
    user_id = session.scalar(select(UserRow.id).where(_ci(UserRow.email, email)))
    if user_id is None:
        return set()
    query = select(ActivityRow.id).where(
        _concerning(user_id, email), ActivityRow.kind.in_([str(k) for k in kinds]), _in_window(window)
    )
    return set(session.scalars(query))


# ------------------------------------------------------------------------------------ people


def add_user(session: Session, user: CrmUser) -> None:
    """Add a CRM user; a ValidationError if one with that e-mail (in any case) exists."""
    if session.scalar(select(UserRow.id).where(_ci(UserRow.email, user.email))) is not None:
        raise ValidationError(f'a CRM user with e-mail "{user.email}" already exists')
    session.add(UserRow(email=user.email, name=user.name, timezone=user.timezone))
    session.flush()


_users = table_of(UserRow)
#: Asked by every daemon pass (its binding's owner): built once, a Core statement on the table.
_USER = select(_users.c.email, _users.c.name, _users.c.timezone).where(
    func.lower(_users.c.email) == func.lower(bindparam("email"))
)


def get_user(session: Session, email: str) -> CrmUser | None:
    row = session.connection().execute(_USER, {"email": email}).first()
    return CrmUser(*row) if row else None


def list_users(session: Session) -> list[CrmUser]:
    rows = session.scalars(select(UserRow).order_by(func.lower(UserRow.email)))
    return [CrmUser(row.email, row.name, row.timezone) for row in rows]


def add_account(session: Session, account: Account) -> None:
    session.add(AccountRow(name=account.name, email=account.email, phone=account.phone))
    session.flush()


def add_contact(session: Session, contact: Contact) -> None:
    """Add a contact; ``contact.account`` names an existing account (ValidationError if none)."""
    account = None
    if contact.account is not None:
        account = session.scalar(select(AccountRow).where(AccountRow.name == contact.account).limit(1))
        if account is None:
            raise ValidationError(f'contact "{contact.email or contact.name}": no account named "{contact.account}"')
    session.add(ContactRow(email=contact.email, name=contact.name, phone=contact.phone, account=account))
    session.flush()


class _ByEmail(Mapping[str, str | None]):
    """E-mail (casefolded) -> name of one table, read on first use: a pass that maps no item (most
    daemon passes) never reads the CRM's people."""

    def __init__(self, session: Session, email: Any, name: Any) -> None:
        self._columns = (email, name)  # the query too is made on first use
        self._session = session
        self._rows: dict[str, str | None] | None = None

    def _loaded(self) -> dict[str, str | None]:
        if self._rows is None:
            self._rows = {e.casefold(): n for e, n in self._session.execute(select(*self._columns)) if e}
        return self._rows

    def __getitem__(self, key: str) -> str | None:
        return self._loaded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __reduce__(self) -> tuple[type[dict[str, str | None]], tuple[dict[str, str | None]]]:
        # Sent to a process that parses a pull (syncd.connectors.parse_pool) as what it reads.
        return dict, (self._loaded(),)


def directory(session: Session) -> Directory:
    """Who the CRM knows, by lower-cased e-mail, for classifying a calendar's attendees."""
    return Directory(
        users=_ByEmail(session, UserRow.email, UserRow.name),
        contacts=_ByEmail(session, ContactRow.email, ContactRow.name),
        accounts=_ByEmail(session, AccountRow.email, AccountRow.name),
    )


@dataclass
class People:
    """Looks up (and creates, where the rules allow) the people and projects activities name.

    One instance serves a whole batch of saves: it loads everyone the batch names in a few queries
    and remembers what it created, which the importer reports.
    """

    session: Session
    users: dict[str, UserRow] = field(default_factory=dict)
    contacts: dict[str, ContactRow] = field(default_factory=dict)
    accounts: dict[str, AccountRow] = field(default_factory=dict)
    projects: dict[str, ProjectRow] = field(default_factory=dict)
    created_users: list[str] = field(default_factory=list)
    created_contacts: list[str] = field(default_factory=list)

    def load(self, activities: Sequence[Activity]) -> None:
        # Looked up as spelled, the database lowering both sides (see _ci): a row the unique index
        # says is this e-mail must be found, or inserting it again breaks that index.
        user_emails = {a.owner for a in activities}
        other_emails: set[str] = set()
        for a in activities:
            for p in a.participants:
                if p.email:
                    (user_emails if p.kind is ParticipantKind.USER else other_emails).add(p.email)
        projects = {a.project for a in activities if a.project}
        dialect = self.session.get_bind().dialect.name
        for batch in _chunks(sorted(user_emails)):
            for u in self.session.scalars(select(UserRow).where(_ci_in(UserRow.email, batch, dialect))):
                self.users[u.email.lower()] = u
        for batch in _chunks(sorted(other_emails)):
            for c in self.session.scalars(select(ContactRow).where(_ci_in(ContactRow.email, batch, dialect))):
                self.contacts[(c.email or "").lower()] = c
            for acc in self.session.scalars(select(AccountRow).where(_ci_in(AccountRow.email, batch, dialect))):
                self.accounts.setdefault((acc.email or "").lower(), acc)
        for batch in _chunks(sorted(projects)):
            for pr in self.session.scalars(select(ProjectRow).where(ProjectRow.name.in_(batch))):
                self.projects[pr.name] = pr

    def user(self, email: str) -> UserRow | None:
        return self.users.get(email.lower())

    def ensure_user(self, email: str, name: str | None) -> UserRow:
        row = self.users.get(email.lower())
        if row is None:
            row = UserRow(email=email, name=name)
            self.session.add(row)
            self.users[email.lower()] = row
            self.created_users.append(email)
        return row

    def ensure_contact(self, email: str, name: str | None) -> ContactRow:
        row = self.contacts.get(email.lower())
        if row is None:
            row = ContactRow(email=email, name=name)
            self.session.add(row)
            self.contacts[email.lower()] = row
            self.created_contacts.append(email)
        return row

    def account(self, email: str | None) -> AccountRow | None:
        # Accounts are companies the CRM manages; an activity links to one, it does not create it.
        return self.accounts.get(email.lower()) if email else None

    def ensure_project(self, name: str) -> ProjectRow:
        row = self.projects.get(name)
        if row is None:
            row = ProjectRow(name=name)
            self.session.add(row)
            self.projects[name] = row
        return row


# ------------------------------------------------------------------------------------ writes


def _content(activity: Activity) -> tuple[object, ...]:
    return tuple(getattr(activity, name) for name in CONTENT_FIELDS)


def _fill_participants(row: ActivityRow, participants: Sequence[Participant], people: People) -> None:
    # Rows are updated in place by position: an unchanged participant costs no SQL (and no change-log
    # entry), and no two rows ever hold the same (activity, position) during the flush.
    rows = row.participants
    for position, p in enumerate(participants):
        if position < len(rows):
            prow = rows[position]
        else:
            prow = ParticipantRow(position=position)
            rows.append(prow)
        prow.kind = str(p.kind)
        prow.email = p.email
        prow.name = p.name
        prow.role = str(p.role)
        prow.response = str(p.response)
        prow.user, prow.contact, prow.account = _linked_rows(p, people)
    del rows[len(participants) :]


def _linked_rows(p: Participant, people: People) -> tuple[UserRow | None, ContactRow | None, AccountRow | None]:
    """The user, contact or account record a participant links to (made if the rules allow)."""
    return (
        people.ensure_user(p.email, p.name) if p.kind is ParticipantKind.USER and p.email else None,
        people.ensure_contact(p.email, p.name) if p.kind is ParticipantKind.CONTACT and p.email else None,
        people.account(p.email) if p.kind is ParticipantKind.ACCOUNT else None,
    )


def _fill_regarding(row: ActivityRow, regarding: Sequence[Regarding]) -> None:
    rows = row.regarding
    for position, g in enumerate(regarding):
        if position < len(rows):
            grow = rows[position]
        else:
            grow = RegardingRow(position=position)
            rows.append(grow)
        grow.kind = str(g.kind)
        grow.ref_id = g.id
        grow.name = g.name
    del rows[len(regarding) :]


def _columns(a: Activity) -> dict[str, Any]:
    """The activity's own columns as stored (not its id, times of record, owner, project or children)."""
    dates, instants = (a.start, a.end, a.due), (None, None, None)
    if not a.all_day:
        dates, instants = instants, dates
    rec = a.recurrence
    return {
        "kind": str(a.kind),
        "subject": a.subject,
        "description": a.description,
        "all_day": a.all_day,
        "start_date": dates[0], "end_date": dates[1], "due_date": dates[2],
        "start_at": instants[0], "end_at": instants[1], "due_at": instants[2],
        "timezone": a.timezone,
        "completed_at": a.completed_at,
        "status": a.status,
        "type": a.type,
        "priority": a.priority,
        "direction": str(a.direction) if a.direction else None,
        "location": a.location,
        "place": a.place,
        "reminder_minutes": a.reminder_minutes,
        "rrule": rec.rrule if rec else None,
        "exdates": [format_moment(d) for d in rec.exdates] if rec else None,
        "overrides": [override_to_json(o) for o in rec.overrides] if rec else None,
        # Empty lists are stored as NULL: a CRM's plain SQL that never heard of them reads the same.
        "rdates": [format_moment(d) for d in rec.rdates] if rec and rec.rdates else None,
        "extra_rrules": list(rec.extra_rrules) if rec and rec.extra_rrules else None,
        "parent_id": a.parent_id,
        "close_reason": a.close_reason,
        "sensitivity": str(a.sensitivity) if a.sensitivity else None,
        "show_as": str(a.show_as) if a.show_as else None,
        "categories": list(a.categories) or None,
        "attachments": [{"url": x.url, "name": x.name} for x in a.attachments] or None,
        "extra": dict(a.extra) or None,
        "organizer": organizer_to_json(a.organizer) if a.organizer else None,
        "timezone_definition": a.timezone_definition,
    }


def _fill(row: ActivityRow, a: Activity, owner: UserRow, people: People) -> None:
    for name, value in _columns(a).items():
        setattr(row, name, value)
    row.owner = owner
    row.project = people.ensure_project(a.project) if a.project else None
    _fill_participants(row, a.participants, people)
    _fill_regarding(row, a.regarding)


def write_activity(session: Session, activity: Activity, row: ActivityRow | None, people: People) -> Saved:
    """Upsert ``activity`` onto ``row`` (its loaded row, or ``None`` if new); checks must be done.

    ``updated_at`` follows the store: a new or changed activity gets ``activity.updated_at`` if the
    caller set a new one (an import keeping its source's times), else now.
    """
    if row is None:
        _new_row(session, activity, people)
        return Saved.CREATED
    if _content(to_activity(row)) == _content(activity):
        return Saved.UNCHANGED
    previous = row.updated_at
    _fill(row, activity, _owner(activity, people), people)
    given = activity.updated_at
    row.updated_at = given if given is not None and given != previous else _now()
    return Saved.UPDATED


def _owner(activity: Activity, people: People) -> UserRow:
    owner = people.user(activity.owner)
    if owner is None:
        raise ValidationError(f'activity "{activity.id}": field "owner": no CRM user with e-mail "{activity.owner}"')
    return owner


def _new_row(session: Session, activity: Activity, people: People) -> ActivityRow:
    owner = _owner(activity, people)
    row = ActivityRow(id=activity.id, created_at=activity.created_at or _now())
    _fill(row, activity, owner, people)
    row.updated_at = activity.updated_at or row.created_at
    session.add(row)
    return row


def _named(activity: Activity, people: People) -> None:
    """The owner a new activity must have, and the people and project it names, made where missing
    (as pending rows, which the next flush gives their ids)."""
    _owner(activity, people)
    if activity.project:
        people.ensure_project(activity.project)
    for p in activity.participants:
        _linked_rows(p, people)


def _insert_new(session: Session, created: Sequence[Activity], people: People) -> None:
    """New activities and their participants and regarding links as bulk INSERTs (one executemany
    per table), after the flush that gave the people and projects they name their ids. Through the
    unit of work each row cost an ORM object, its attribute events and its bookkeeping at the flush:
    most of the CPU of a pull's store writes."""
    now = _now()
    activities = []
    for a in created:
        owner = _owner(a, people)
        at = a.created_at or now
        activities.append({
            "id": a.id, "created_at": at, "updated_at": a.updated_at or at, "owner_id": owner.id,
            "project_id": people.projects[a.project].id if a.project else None, **_columns(a),
        })
    participants = [
        {
            "activity_id": a.id, "position": position, "kind": str(p.kind), "email": p.email, "name": p.name,
            "role": str(p.role), "response": str(p.response),
            **{f"{which}_id": (linked.id if linked is not None else None)
               for which, linked in zip(("user", "contact", "account"), _linked_rows(p, people), strict=True)},
        }
        for a in created
        for position, p in enumerate(a.participants)
    ]
    regarding = [
        {"activity_id": a.id, "position": position, "kind": str(g.kind), "ref_id": g.id, "name": g.name}
        for a in created
        for position, g in enumerate(a.regarding)
    ]
    # Core statements on the session's connection: the ORM's bulk path would only add its own work.
    connection = session.connection()
    order = [(ActivityRow, activities), (ParticipantRow, participants), (RegardingRow, regarding)]
    if connection.dialect.name == "sqlite":
        # The change log's triggers log a participant or regarding row only while its activity
        # exists, and index an activity's entry under every user it then names. Written before their
        # activity (its foreign keys checked at the commit), they log nothing, and the activity's one
        # entry names them all: the same users told, at one log row per activity instead of one per
        # row, which was a third of SQLite's time in a pull. PostgreSQL checks its foreign keys at
        # once (they are not deferrable), so there they keep the activity-first order.
        connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        order = order[1:] + order[:1]
    for row, values in order:
        if values:
            connection.execute(insert(table_of(row)), values)


def save_activity(session: Session, activity: Activity) -> Saved:
    """Create or update ``activity`` by id, replacing its participants and regarding links.

    The owner must be an existing CRM user (else ValidationError); users and contacts that
    participants name by e-mail are created when missing.
    """
    check_activity(activity)
    return save_activities(session, [activity])[0]


def save_activities(session: Session, activities: Sequence[Activity]) -> list[Saved]:
    """:func:`save_activity` for a batch whose activities passed :func:`check_activity` and have
    distinct ids: the people and the existing rows of the whole batch are read in a few queries, one
    flush writes the changed rows and the people new ones name, and the new rows go in as one INSERT
    per table.

    Any failure leaves the session half-written: the caller rolls the transaction back."""
    people = People(session)
    people.load(activities)
    rows = load_rows(session, [a.id for a in activities])
    outcomes: list[Saved] = []
    created: list[Activity] = []
    for a in activities:
        row = rows.get(a.id)
        if row is None:
            _named(a, people)
            created.append(a)
            outcomes.append(Saved.CREATED)
        else:
            outcomes.append(write_activity(session, a, row, people))
    session.flush()
    if created:
        _insert_new(session, created, people)
    return outcomes


def delete_activity(
    session: Session, id: str, *, completed_statuses: Collection[str] = DEFAULT_COMPLETED_STATUSES
) -> bool:
    """Delete an activity; ``False`` if there was none. A completed one is refused (RuleViolation)."""
    return bool(delete_activities(session, [id], completed_statuses=completed_statuses))


def delete_activities(
    session: Session, ids: Iterable[str], *, completed_statuses: Collection[str] = DEFAULT_COMPLETED_STATUSES
) -> set[str]:
    """Delete the activities among ``ids`` that exist, in one flush; returns the ids deleted. A completed
    one is refused (RuleViolation) before anything is deleted."""
    found = list(_rows_by_id(session, ids))
    for row in found:
        if is_completed(row.completed_at, row.status, completed_statuses):
            why = f"completed at {row.completed_at.isoformat()}" if row.completed_at else f'status "{row.status}"'
            raise RuleViolation(
                f'activity "{row.id}" is completed ({why}); a completed activity stays in the CRM as a '
                "record and cannot be deleted"
            )
    for row in found:
        session.delete(row)  # participants and regarding links go by ON DELETE CASCADE
    session.flush()
    return {row.id for row in found}


def _rows_by_id(session: Session, ids: Iterable[str]) -> Iterator[ActivityRow]:
    """The bare rows (no children) of the existing activities among ``ids``."""
    for batch in _chunks(ids):
        yield from session.scalars(select(ActivityRow).where(ActivityRow.id.in_(batch)))
