"""The JSON Lines exchange format for activities: one JSON object per line, one activity per object.

Other tools read and write this format, so field names never change. Every field is written on
export (``null`` where empty); on import only ``id``, ``kind`` and ``owner`` are required. Timed
values are ISO 8601 with a UTC offset, rendered in the activity's ``timezone`` (UTC if none); when
``all_day`` is true they are dates (``YYYY-MM-DD``, ``end`` exclusive as in RFC 5545).

Errors name the line and the field (``line 3: field "end": is before "start"``); a file is checked as a
whole and every problem in it is reported, not just the first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum
from typing import Any, TextIO, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd.errors import ValidationError
from syncd.model import (
    Activity,
    Attachment,
    Direction,
    JsonScalar,
    Kind,
    Moment,
    Override,
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
from syncd.store.rules import (
    Problem,
    activity_problems,
    day_occurrence,
    override_moment_problem,
    override_problems,
    participant_problems,
    rrule_problem,
    timed_occurrence,
    zone_problem,
)

#: The fields of one line, in the order they are written.
FIELDS: tuple[str, ...] = (
    "id",
    "kind",
    "subject",
    "description",
    "start",
    "end",
    "all_day",
    "timezone",
    "timezone_definition",
    "due",
    "completed_at",
    "status",
    "type",
    "priority",
    "direction",
    "location",
    "place",
    "project",
    "reminder_minutes",
    "recurrence",
    "owner",
    "participants",
    "regarding",
    "parent_id",
    "close_reason",
    "sensitivity",
    "show_as",
    "categories",
    "attachments",
    "extra",
    "organizer",
    "updated_at",
)
RECURRENCE_FIELDS = ("rrule", "exdates", "overrides", "rdates", "extra_rrules")
OVERRIDE_FIELDS = (
    "recurrence_id", "start", "end", "subject", "description", "location", "status", "reminder_minutes",
    "reminder_off", "sensitivity", "show_as", "this_and_future",
)
PARTICIPANT_FIELDS = ("kind", "email", "name", "role", "response")
REGARDING_FIELDS = ("kind", "id", "name")
ATTACHMENT_FIELDS = ("url", "name")
ORGANIZER_FIELDS = ("kind", "email", "name")

#: Plain-text fields of an activity: a JSON string or null.
_TEXT_FIELDS = (
    "description",
    "status",
    "type",
    "priority",
    "location",
    "place",
    "project",
    "parent_id",
    "close_reason",
)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
E = TypeVar("E", bound=StrEnum)


class InvalidActivities(ValidationError):
    """One or more activities break the format or the CRM's rules; ``messages`` lists every problem."""

    def __init__(self, messages: Sequence[str]) -> None:
        self.messages = tuple(messages)
        super().__init__("\n".join(self.messages))


# ---------------------------------------------------------------------------------------- export


def format_moment(value: Moment, zone: tzinfo = UTC) -> str:
    """``YYYY-MM-DD`` for a date, ISO 8601 with the offset of ``zone`` for a datetime.

    An instant ``zone`` cannot show (0001-01-01T00:00Z is in year 0 west of Greenwich) is written with
    the offset it has: the same instant, readable back."""
    if isinstance(value, datetime):
        try:
            return value.astimezone(zone).isoformat()
        except OverflowError:
            return value.isoformat()
    return value.isoformat()


def display_zone(name: str | None, definition: str | None = None) -> tzinfo:
    """The zone an activity's times are shown in: its IANA ``timezone`` or kept definition, else UTC."""
    if definition is not None:
        # Imported here: icalendar is loaded by what reads a kept zone, not by every user of this format.
        from syncd.mapping.ical_time import kept_zone

        try:
            return kept_zone(definition)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError):
            return UTC
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _moment_or_none(value: Moment | None, zone: tzinfo) -> str | None:
    return None if value is None else format_moment(value, zone)


def override_to_json(override: Override, zone: tzinfo = UTC) -> dict[str, Any]:
    return {
        "recurrence_id": format_moment(override.recurrence_id, zone),
        "start": _moment_or_none(override.start, zone),
        "end": _moment_or_none(override.end, zone),
        "subject": override.subject,
        "description": override.description,
        "location": override.location,
        "status": override.status,
        "reminder_minutes": override.reminder_minutes,
        "reminder_off": override.reminder_off,
        "sensitivity": None if override.sensitivity is None else str(override.sensitivity),
        "show_as": None if override.show_as is None else str(override.show_as),
        "this_and_future": override.this_and_future,
    }


def activity_to_json(a: Activity) -> dict[str, Any]:
    """The exchange-format object for ``a`` (every field present, in :data:`FIELDS` order)."""
    zone = display_zone(a.timezone, a.timezone_definition)
    recurrence = None
    if a.recurrence is not None:
        recurrence = {
            "rrule": a.recurrence.rrule,
            "exdates": [format_moment(d, zone) for d in a.recurrence.exdates],
            "overrides": [override_to_json(o, zone) for o in a.recurrence.overrides],
            "rdates": [format_moment(d, zone) for d in a.recurrence.rdates],
            "extra_rrules": list(a.recurrence.extra_rrules),
        }
    return {
        "id": a.id,
        "kind": str(a.kind),
        "subject": a.subject,
        "description": a.description,
        "start": _moment_or_none(a.start, zone),
        "end": _moment_or_none(a.end, zone),
        "all_day": a.all_day,
        "timezone": a.timezone,
        "timezone_definition": a.timezone_definition,
        "due": _moment_or_none(a.due, zone),
        "completed_at": _moment_or_none(a.completed_at, zone),
        "status": a.status,
        "type": a.type,
        "priority": a.priority,
        "direction": None if a.direction is None else str(a.direction),
        "location": a.location,
        "place": a.place,
        "project": a.project,
        "reminder_minutes": a.reminder_minutes,
        "recurrence": recurrence,
        "owner": a.owner,
        "participants": [
            {"kind": str(p.kind), "email": p.email, "name": p.name, "role": str(p.role), "response": str(p.response)}
            for p in a.participants
        ],
        "regarding": [{"kind": str(r.kind), "id": r.id, "name": r.name} for r in a.regarding],
        "parent_id": a.parent_id,
        "close_reason": a.close_reason,
        "sensitivity": None if a.sensitivity is None else str(a.sensitivity),
        "show_as": None if a.show_as is None else str(a.show_as),
        "categories": list(a.categories),
        "attachments": [{"url": x.url, "name": x.name} for x in a.attachments],
        "extra": dict(a.extra),
        "organizer": None if a.organizer is None else organizer_to_json(a.organizer),
        "updated_at": _moment_or_none(a.updated_at, zone),
    }


def organizer_to_json(p: Participant) -> dict[str, Any]:
    return {"kind": str(p.kind), "email": p.email, "name": p.name}


def write_jsonl(activities: Iterable[Activity], stream: TextIO) -> int:
    """Write one line per activity (UTF-8 text as is, not \\u-escaped); returns how many."""
    count = 0
    for activity in activities:
        stream.write(json.dumps(activity_to_json(activity), ensure_ascii=False))
        stream.write("\n")
        count += 1
    return count


# ---------------------------------------------------------------------------------------- import


def parse_moment(text: str) -> Moment:
    """A date (``YYYY-MM-DD``) or an aware datetime; ``ValueError`` for anything else."""
    if _DATE_ONLY.fullmatch(text):
        return date.fromisoformat(text)
    value = datetime.fromisoformat(text)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset (for example +02:00 or Z)")
    return value


def _shown(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:37] + "..."


class _Reader:
    """Reads typed values out of one JSON object, collecting a :class:`Problem` for each bad one."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append(Problem(field, message))

    def extend(self, problems: Iterable[Problem]) -> None:
        """Add the rule set's findings; one a reading step already reported is not repeated."""
        self.problems.extend(p for p in problems if p not in self.problems)

    def object(self, value: Any, path: str, known: Sequence[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(path, f"must be an object, not {_shown(value)}")
            return None
        for key in value:
            if key not in known:
                import difflib  # only for a misspelt key: the engine reads this format on every pass

                hint = difflib.get_close_matches(key, known, n=1)
                suffix = f' (did you mean "{hint[0]}"?)' if hint else ""
                self.problem(_join(path, key), f"unknown field{suffix}")
        return value

    def text(self, obj: dict[str, Any], key: str, path: str = "", *, required: bool = False) -> str | None:
        value = obj.get(key)
        name = _join(path, key)
        if value is None:
            if required:
                self.problem(name, "is required")
            return None
        if not isinstance(value, str):
            self.problem(name, f"must be a string, not {_shown(value)}")
            return None
        if required and not value.strip():
            self.problem(name, "must not be empty")
            return None
        return value

    def choice(
        self, obj: dict[str, Any], key: str, enum: type[E], path: str = "", *, default: E | None = None,
        required: bool = False,
    ) -> E | None:
        name = _join(path, key)
        value = self.text(obj, key, path, required=required)
        if value is None:
            return default
        try:
            return enum(value)
        except ValueError:
            allowed = "|".join(str(member) for member in enum)
            self.problem(name, f"must be one of {allowed}, not {_shown(value)}")
            return default

    def moment(self, obj: dict[str, Any], key: str, path: str = "") -> Moment | None:
        return self.moment_value(obj.get(key), _join(path, key))

    def moment_value(self, value: Any, name: str) -> Moment | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(name, f"must be an ISO 8601 string, not {_shown(value)}")
            return None
        try:
            return parse_moment(value)
        except ValueError as exc:
            message = str(exc) if "UTC offset" in str(exc) else "is not an ISO 8601 date or date-time"
            self.problem(name, f"{message}: {_shown(value)}")
            return None

    def consistent(
        self, value: Moment | None, name: str, all_day: bool, day: bool = False, timed: bool = False
    ) -> Moment | None:
        problem = override_moment_problem(name, value, all_day, day, timed)
        if problem:
            self.problems.append(problem)
            return None
        return value

    def minutes(self, obj: dict[str, Any], key: str, path: str = "") -> int | None:
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.problem(_join(path, key), f"must be a whole number of minutes, not {_shown(value)}")
            return None
        return value

    def flag(self, obj: dict[str, Any], key: str, path: str = "") -> bool:
        value = obj.get(key)
        if value is not None and not isinstance(value, bool):
            self.problem(_join(path, key), f"must be true or false, not {_shown(value)}")
            return False
        return bool(value)

    def list(self, obj: dict[str, Any], key: str, path: str = "") -> list[Any]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(_join(path, key), f"must be a list, not {_shown(value)}")
            return []
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _override(r: _Reader, value: Any, path: str, all_day: bool) -> Override | None:
    obj = r.object(value, path, OVERRIDE_FIELDS)
    if obj is None:
        return None
    if obj.get("recurrence_id") is None:
        r.problem(_join(path, "recurrence_id"), "is required")
    recurrence_id = r.consistent(r.moment(obj, "recurrence_id", path), _join(path, "recurrence_id"), all_day)
    start_value = r.moment(obj, "start", path)
    # One occurrence of a timed series may be all-day: its start and end are then dates; one of an all-day
    # series may have its own times: they are then date-times.
    day = day_occurrence(start_value, all_day)
    timed = timed_occurrence(start_value, all_day)
    start = r.consistent(start_value, _join(path, "start"), all_day, day, timed)
    end = r.consistent(r.moment(obj, "end", path), _join(path, "end"), all_day, day, timed)
    subject = r.text(obj, "subject", path)
    description = r.text(obj, "description", path)
    location = r.text(obj, "location", path)
    status = r.text(obj, "status", path)
    reminder = r.minutes(obj, "reminder_minutes", path)
    reminder_off = r.flag(obj, "reminder_off", path)
    sensitivity = r.choice(obj, "sensitivity", Sensitivity, path)
    show_as = r.choice(obj, "show_as", ShowAs, path)
    this_and_future = r.flag(obj, "this_and_future", path)
    if recurrence_id is None:
        return None
    override = Override(
        recurrence_id, start, end, subject, description, location, status, reminder, reminder_off, sensitivity,
        show_as, this_and_future,
    )
    r.extend(override_problems(override, path, all_day))
    return override


def override_from_json(obj: dict[str, Any], *, all_day: bool) -> Override:
    """One override as the store keeps it (same shape as in the exchange format)."""
    r = _Reader()
    override = _override(r, obj, "override", all_day)
    if r.problems or override is None:
        raise InvalidActivities([str(p) for p in r.problems])
    return override


def _recurrence(r: _Reader, value: Any, all_day: bool, start: Moment | None) -> Recurrence | None:
    if value is None:
        return None
    obj = r.object(value, "recurrence", RECURRENCE_FIELDS)
    if obj is None:
        return None
    # A series of RDATEs only (RFC 5545 allows it) has an empty rule.
    rule = r.text(obj, "rrule", "recurrence", required=not obj.get("rdates"))
    if rule is None and obj.get("rdates"):
        rule = ""
    if rule is not None and rule.upper().startswith("RRULE:"):
        rule = rule[len("RRULE:") :]
    if rule:
        problem = rrule_problem(rule, start)
        if problem:
            r.problems.append(problem)
    exdates = _moments(r, obj, "exdates", all_day)
    rdates = _moments(r, obj, "rdates", all_day)
    extra_rrules: list[str] = []
    for i, item in enumerate(r.list(obj, "extra_rrules", "recurrence")):
        name = f"recurrence.extra_rrules[{i}]"
        if not isinstance(item, str):
            r.problem(name, f"must be a string, not {_shown(item)}")
            continue
        extra = item[len("RRULE:") :] if item.upper().startswith("RRULE:") else item
        problem = rrule_problem(extra, start, name)
        if problem:
            r.problems.append(problem)
        extra_rrules.append(extra)
    overrides = []
    for i, item in enumerate(r.list(obj, "overrides", "recurrence")):
        override = _override(r, item, f"recurrence.overrides[{i}]", all_day)
        if override is not None:
            overrides.append(override)
    if rule is None:
        return None
    return Recurrence(rule, tuple(exdates), tuple(overrides), tuple(rdates), tuple(extra_rrules))


def _moments(r: _Reader, obj: dict[str, Any], key: str, all_day: bool) -> list[Moment]:
    found: list[Moment] = []
    for i, item in enumerate(r.list(obj, key, "recurrence")):
        name = f"recurrence.{key}[{i}]"
        moment = r.consistent(r.moment_value(item, name), name, all_day)
        if moment is not None:
            found.append(moment)
    return found


def _participants(r: _Reader, obj: dict[str, Any]) -> tuple[Participant, ...]:
    result = []
    for i, item in enumerate(r.list(obj, "participants")):
        path = f"participants[{i}]"
        p = r.object(item, path, PARTICIPANT_FIELDS)
        if p is None:
            continue
        kind = r.choice(p, "kind", ParticipantKind, path, required=True)
        email = r.text(p, "email", path)
        if email is not None and not email.strip():
            email = None  # "email": "" says there is none
        name = r.text(p, "name", path)
        role = r.choice(p, "role", Role, path, default=Role.REQUIRED)
        response = r.choice(p, "response", Response, path, default=Response.NEEDS_ACTION)
        if kind is not None and role is not None and response is not None:
            participant = Participant(kind, email, name, role, response)
            r.extend(participant_problems(participant, path))
            result.append(participant)
    return tuple(result)


def _regarding(r: _Reader, obj: dict[str, Any]) -> tuple[Regarding, ...]:
    result = []
    for i, item in enumerate(r.list(obj, "regarding")):
        path = f"regarding[{i}]"
        g = r.object(item, path, REGARDING_FIELDS)
        if g is None:
            continue
        kind = r.choice(g, "kind", RegardingKind, path, required=True)
        ref = r.text(g, "id", path, required=True)
        name = r.text(g, "name", path)
        if kind is not None and ref is not None:
            result.append(Regarding(kind, ref, name))
    return tuple(result)


def _attachments(r: _Reader, obj: dict[str, Any]) -> tuple[Attachment, ...]:
    result = []
    for i, item in enumerate(r.list(obj, "attachments")):
        path = f"attachments[{i}]"
        a = r.object(item, path, ATTACHMENT_FIELDS)
        if a is None:
            continue
        url = r.text(a, "url", path, required=True)
        name = r.text(a, "name", path)
        if url is not None:
            result.append(Attachment(url, name))
    return tuple(result)


def _categories(r: _Reader, obj: dict[str, Any]) -> tuple[str, ...]:
    result = []
    for i, item in enumerate(r.list(obj, "categories")):
        if isinstance(item, str):
            result.append(item)
        else:
            r.problem(f"categories[{i}]", f"must be a string, not {_shown(item)}")
    return tuple(result)


def _extra(r: _Reader, obj: dict[str, Any]) -> dict[str, JsonScalar]:
    value = obj.get("extra")
    if value is None:
        return {}
    if not isinstance(value, dict):
        r.problem("extra", f"must be an object, not {_shown(value)}")
        return {}
    for key, item in value.items():
        if isinstance(item, dict | list):
            r.problem(f"extra.{key}", f"must be a string, number, true, false or null, not {_shown(item)}")
    return {k: v for k, v in value.items() if not isinstance(v, dict | list)}


def _organizer(r: _Reader, obj: dict[str, Any]) -> Participant | None:
    value = obj.get("organizer")
    if value is None:
        return None
    o = r.object(value, "organizer", ORGANIZER_FIELDS)
    if o is None:
        return None
    kind = r.choice(o, "kind", ParticipantKind, "organizer", default=ParticipantKind.EXTERNAL)
    email = r.text(o, "email", "organizer", required=True)
    name = r.text(o, "name", "organizer")
    if kind is None or email is None:
        return None
    return Participant(kind, email, name)


def organizer_from_json(obj: dict[str, Any]) -> Participant:
    """The organizer as the store keeps it (same shape as in the exchange format)."""
    r = _Reader()
    organizer = _organizer(r, {"organizer": obj})
    if r.problems or organizer is None:
        raise InvalidActivities([str(p) for p in r.problems] or ["organizer: unreadable"])
    return organizer


def _prefix(line: int | None, obj: Any) -> str:
    if line is not None:
        return f"line {line}: "
    if isinstance(obj, dict) and isinstance(obj.get("id"), str):
        return f'activity "{obj["id"]}": '
    return ""


def _read_activity(r: _Reader, value: Any) -> Activity | None:
    obj = r.object(value, "", FIELDS) if isinstance(value, dict) else None
    if obj is None:
        r.problems.append(Problem("", f"must be a JSON object, not {_shown(value)}"))
        return None
    ident = r.text(obj, "id", required=True)
    kind = r.choice(obj, "kind", Kind, required=True)
    subject = r.text(obj, "subject") or ""
    owner = r.text(obj, "owner", required=True)
    all_day_value = obj.get("all_day", False)
    if all_day_value is None:
        all_day_value = False
    if not isinstance(all_day_value, bool):
        r.problem("all_day", f"must be true or false, not {_shown(all_day_value)}")
        all_day_value = False
    all_day: bool = all_day_value
    start = r.moment(obj, "start")
    end = r.moment(obj, "end")
    due = r.moment(obj, "due")
    completed_at = r.moment(obj, "completed_at")
    updated_at = r.moment(obj, "updated_at")
    zone = r.text(obj, "timezone")
    definition = r.text(obj, "timezone_definition")
    zone_wrong = zone_problem(zone, definition)
    if zone_wrong:
        r.problems.append(zone_wrong)
    for name, moment in (("completed_at", completed_at), ("updated_at", updated_at)):
        if moment is not None and not isinstance(moment, datetime):
            r.problem(name, "must be a date and time with a UTC offset, not a date")
    texts = {name: r.text(obj, name) for name in _TEXT_FIELDS}
    direction = r.choice(obj, "direction", Direction)
    reminder = r.minutes(obj, "reminder_minutes")
    recurrence = _recurrence(r, obj.get("recurrence"), all_day, start)
    participants = _participants(r, obj)
    regarding = _regarding(r, obj)
    sensitivity = r.choice(obj, "sensitivity", Sensitivity)
    show_as = r.choice(obj, "show_as", ShowAs)
    categories = _categories(r, obj)
    attachments = _attachments(r, obj)
    extra = _extra(r, obj)
    organizer = _organizer(r, obj)
    if ident is None or kind is None or owner is None or r.problems:
        return None
    activity = Activity(
        id=ident,
        kind=kind,
        subject=subject,
        owner=owner,
        start=start,
        end=end,
        all_day=all_day,
        timezone=zone,
        timezone_definition=definition,
        due=due,
        completed_at=completed_at if isinstance(completed_at, datetime) else None,
        direction=direction,
        reminder_minutes=reminder,
        recurrence=recurrence,
        participants=participants,
        regarding=regarding,
        updated_at=updated_at if isinstance(updated_at, datetime) else None,
        description=texts["description"],
        status=texts["status"],
        type=texts["type"],
        priority=texts["priority"],
        location=texts["location"],
        place=texts["place"],
        project=texts["project"],
        parent_id=texts["parent_id"],
        close_reason=texts["close_reason"],
        sensitivity=sensitivity,
        show_as=show_as,
        categories=categories,
        attachments=attachments,
        extra=extra,
        organizer=organizer,
    )
    r.extend(activity_problems(activity))
    return None if r.problems else activity


def _messages(prefix: str, problems: Iterable[Problem]) -> list[str]:
    return [f"{prefix}{p.message}" if not p.field else f"{prefix}{p}" for p in problems]


def activity_from_json(obj: dict[str, Any], *, line: int | None = None) -> Activity:
    """The activity an exchange-format object describes; :class:`InvalidActivities` names each problem."""
    r = _Reader()
    activity = _read_activity(r, obj)
    if activity is None:
        raise InvalidActivities(_messages(_prefix(line, obj), r.problems))
    return activity


def split_jsonl(text: str) -> tuple[list[tuple[int, Activity]], list[str]]:
    """The good activities of a JSON Lines text with their line numbers, and a message per problem.

    Blank lines are skipped; line numbers count every line of the text.
    """
    messages: list[str] = []
    result: list[tuple[int, Activity]] = []
    first_line_of: dict[str, int] = {}
    # Only "\n" ends a line: str.splitlines() would also split at U+2028, U+0085 and others, which
    # json.dumps(ensure_ascii=False) leaves unescaped inside strings.
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        raw = line.removesuffix("\r")
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            messages.append(f"line {number}: not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        try:
            activity = activity_from_json(value, line=number)
        except InvalidActivities as exc:
            messages.extend(exc.messages)
            continue
        if activity.id in first_line_of:
            first = first_line_of[activity.id]
            messages.append(f'line {number}: field "id": "{activity.id}" is already on line {first}')
            continue
        first_line_of[activity.id] = number
        result.append((number, activity))
    return result, messages


def parse_jsonl(text: str) -> list[tuple[int, Activity]]:
    """Every activity of a JSON Lines text with its line number.

    Raises :class:`InvalidActivities` listing every problem of every line (bad JSON, unknown kind or
    field, wrong type, end before start, an id used twice) when there is any.
    """
    result, messages = split_jsonl(text)
    if messages:
        raise InvalidActivities(messages)
    return result


def read_jsonl(text: str) -> list[Activity]:
    """The activities of a JSON Lines text; see :func:`parse_jsonl` for the errors."""
    return [activity for _, activity in parse_jsonl(text)]
