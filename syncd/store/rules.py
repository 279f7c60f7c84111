"""The CRM's rules for an activity: the one set of checks every path applies.

What an activity must be to be stored is decided here and nowhere else. The exchange format
(:mod:`syncd.activity_json`, also the engine's stored merge bases), the repository (on save, and the
engine on each row a CRM wrote with its own SQL) and the calendar mappings (:mod:`syncd.mapping.ical`,
:mod:`syncd.mapping.ews`, which refuse with an ItemError what these rules refuse) all call
:func:`activity_problems`, so whatever one path accepts, every other path accepts and reads back.

The rules include the store's physical limits (column lengths, no NUL in text, 32-bit integers,
instants UTC can show) so SQLite refuses exactly what PostgreSQL would, with a message instead of a
driver error.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from syncd.errors import ValidationError
from syncd.model import (
    EVENT_KINDS,
    Activity,
    Attachment,
    Kind,
    Moment,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
    Regarding,
)

#: Column limits of syncd/store/models.py (PostgreSQL enforces them, SQLite does not).
ID_MAX = 255
EMAIL_MAX = 320
ZONE_MAX = 64
#: A kept VTIMEZONE: Outlook's take a few hundred bytes, one listing every change since 1900 some KB.
DEFINITION_MAX = 65536
INT_MAX = 2**31 - 1

#: Statuses that mark an activity as done; configurable because each CRM names its own list.
DEFAULT_COMPLETED_STATUSES = frozenset({"done", "completed", "succeeded"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: ``field`` as named in the exchange format, and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f'field "{self.field}": {self.message}'


def is_completed(
    completed_at: datetime | None, status: str | None, completed_statuses: Collection[str] = DEFAULT_COMPLETED_STATUSES
) -> bool:
    """Done, by its completion time or by a status the CRM counts as done (case-insensitive)."""
    if completed_at is not None:
        return True
    return status is not None and status.casefold() in {s.casefold() for s in completed_statuses}


def _is_timed(value: Moment) -> bool:
    return isinstance(value, datetime)


def moment_problem(name: str, value: Moment | None, all_day: bool) -> Problem | None:
    """A date where a date belongs (all-day), an aware datetime everywhere else, UTC able to show it."""
    if value is None:
        return None
    if all_day and _is_timed(value):
        return Problem(name, "must be a date (YYYY-MM-DD) because all_day is true")
    if not all_day:
        if not _is_timed(value):
            return Problem(name, "must be a date and time with a UTC offset because all_day is false")
        assert isinstance(value, datetime)
        return instant_problem(name, value)
    return None


def instant_problem(name: str, value: datetime) -> Problem | None:
    if value.tzinfo is None or value.utcoffset() is None:
        return Problem(name, "needs a UTC offset (for example +02:00 or Z)")
    try:
        value.astimezone(UTC)
    except OverflowError:
        # Year 1 east of Greenwich is year 0 in UTC: no store column or calendar can hold it.
        return Problem(name, "is outside the years 1 to 9999 in UTC")
    return None


def text_problem(name: str, value: str | None, *, required: bool = False, limit: int | None = None) -> Problem | None:
    """Text the store keeps as it is: no NUL (PostgreSQL refuses it), no lone surrogate (not text)."""
    if value is None:
        return Problem(name, "is required") if required else None
    if required and not value.strip():
        return Problem(name, "must not be empty")
    if limit is not None and len(value) > limit:
        return Problem(name, f"is longer than {limit} characters")
    if "\x00" in value:
        return Problem(name, "must not contain a NUL character (U+0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return Problem(name, "is not valid Unicode text (it holds a lone surrogate)")
    return None


def _texts(problems: list[Problem], path: str, **values: str | None) -> None:
    for key, value in values.items():
        problem = text_problem(_join(path, key), value)
        if problem:
            problems.append(problem)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def email_problem(name: str, email: str) -> Problem | None:
    if not email.strip():
        return Problem(name, "must not be empty (leave it out for none)")
    if email != email.strip():
        return Problem(name, "must not start or end with white space")
    if any(ord(c) < 32 or ord(c) == 127 for c in email):
        return Problem(name, "must not contain control characters such as line breaks")
    return text_problem(name, email, limit=EMAIL_MAX)


def participant_problems(p: Participant, path: str) -> list[Problem]:
    problems: list[Problem] = []
    if p.email is not None:
        problem = email_problem(_join(path, "email"), p.email)
        if problem:
            problems.append(problem)
    elif p.kind is ParticipantKind.USER:
        problems.append(
            Problem(_join(path, "email"), "is required for a participant of kind user (users are known by e-mail)")
        )
    _texts(problems, path, name=p.name)
    if p.email is None and not (p.name or "").strip():
        problems.append(Problem(path, 'needs an "email" or a "name"'))
    return problems


#: Longest attachment URL kept (a data: URI is a file's bytes, not a link: refused, see attachment_problems).
URL_MAX = 8192
#: An ``extra`` key is the CRM's field name.
EXTRA_KEY_MAX = 255
#: From here on a float prints with an exponent, which PostgreSQL's JSONB does not give back as written.
FLOAT_EXACT = 1e16


def attachment_problems(a: Attachment, path: str) -> list[Problem]:
    problems = [p for p in (text_problem(_join(path, "url"), a.url, required=True, limit=URL_MAX),) if p]
    if not problems and (a.url != a.url.strip() or any(c.isspace() for c in a.url)):
        problems.append(Problem(_join(path, "url"), "must be one URI without white space"))
    if not problems and ":" not in a.url:
        problems.append(Problem(_join(path, "url"), "must be an absolute URI such as https://example.com/offer.pdf"))
    if not problems and a.url[:5].casefold() == "data:":
        problems.append(Problem(_join(path, "url"), "must link to a file, not hold one (data: URIs are not carried)"))
    _texts(problems, path, name=a.name)
    return problems


def extra_problems(extra: object) -> list[Problem]:
    """The CRM's own fields: an object of JSON scalars (strings, numbers, true/false, null)."""
    if not isinstance(extra, Mapping):
        return [Problem("extra", "must be an object")]
    problems: list[Problem] = []
    for key, value in extra.items():
        name = f"extra.{key}"
        if not isinstance(key, str):
            problems.append(Problem("extra", f"has a key that is not text: {key!r}"))
            continue
        problem = text_problem(name, key, required=True, limit=EXTRA_KEY_MAX)
        if problem:
            problems.append(Problem("extra", f"key {problem.message}"))
        if isinstance(value, str):
            problem = text_problem(name, value)
            if problem:
                problems.append(problem)
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(name, "must be a finite number (JSON has no NaN or infinity)"))
        elif isinstance(value, float) and abs(value) >= FLOAT_EXACT:
            # PostgreSQL's JSONB writes 1e+300 back as 1000...0, a whole number that is not the float.
            problems.append(Problem(name, f"must be a whole number (no fraction, no exponent) from {FLOAT_EXACT:.0e}"))
        elif value is not None and not isinstance(value, bool | int | float):
            problems.append(Problem(name, "must be a string, number, true, false or null"))
    return problems


def categories_problems(categories: object) -> list[Problem]:
    problems: list[Problem] = []
    for i, category in enumerate(categories if isinstance(categories, tuple | list) else ()):
        name = f"categories[{i}]"
        if not isinstance(category, str):
            problems.append(Problem(name, "must be a string"))
            continue
        problem = text_problem(name, category, required=True)
        if problem:
            problems.append(problem)
        elif any(ord(c) < 32 for c in category):
            # A comma is kept: iCalendar escapes it in CATEGORIES, EWS and Graph send a list.
            problems.append(Problem(name, "must not contain control characters"))
    return problems


def regarding_problems(g: Regarding, path: str) -> list[Problem]:
    problems = [p for p in (text_problem(_join(path, "id"), g.id, required=True, limit=ID_MAX),) if p]
    _texts(problems, path, name=g.name)
    return problems


def rrule_problem(rule: str, start: Moment | None, name: str = "recurrence.rrule") -> Problem | None:
    """Why ``rule`` is no RRULE value syncd can expand, if it is not."""
    message = _rrule_message(rule, isinstance(start, datetime) and start.tzinfo is not None)
    return Problem(name, message) if message else None


@lru_cache(maxsize=4096)
def _rrule_message(rule: str, aware: bool) -> str | None:
    """Why ``rule`` is no RRULE value dateutil (and so the occurrence expansion) accepts, if it is not.

    Only whether DTSTART is aware changes the verdict (UNTIL must then be UTC), so the answer is cached
    on that: every load of an activity checks its rule again."""
    if not rule.strip():
        return "must not be empty"
    problem = text_problem("", rule)
    if problem:
        return problem.message
    parts = {part.split("=", 1)[0].strip().upper() for part in rule.split(";")}
    if "\n" in rule or ":" in rule:
        return "must be one RRULE value such as FREQ=WEEKLY;BYDAY=MO"
    if "FREQ" not in parts:
        return "needs FREQ (for example FREQ=WEEKLY)"
    if {"COUNT", "UNTIL"} <= parts:
        return "must not have both COUNT and UNTIL (RFC 5545)"
    # Imported here: a pass that checks no rule (nothing changed) does not load dateutil's parser.
    from dateutil.rrule import rrulestr

    dtstart = datetime(2000, 1, 1, tzinfo=UTC) if aware else datetime(2000, 1, 1)
    try:
        rrulestr(rule, dtstart=dtstart)
    except (ValueError, TypeError, OverflowError) as exc:
        return f"is not a valid RFC 5545 RRULE: {exc}"
    return None


def day_occurrence(start: Moment | None, all_day: bool) -> bool:
    """Whether an override's ``start`` makes its occurrence of a timed series all-day: RFC 5545 lets an
    override's DTSTART be a DATE whatever the series' is (Thunderbird writes one). Its ``end`` is then a
    date too (exclusive, ``None`` or equal to the start: one day); its ``recurrence_id`` stays a time."""
    return not all_day and start is not None and not _is_timed(start)


def timed_occurrence(start: Moment | None, all_day: bool) -> bool:
    """Whether an override's ``start`` gives its occurrence of an all-day series its own times, the reverse
    of :func:`day_occurrence` (RFC 5545 allows it as well). Its ``end`` is then an aware date-time too
    (``None`` or equal to the start: an instant, as a date-time DTSTART alone means, RFC 5545 3.6.1); its
    ``recurrence_id`` stays a date."""
    return all_day and start is not None and _is_timed(start)


def override_moment_problem(
    name: str, value: Moment | None, all_day: bool, day: bool, timed: bool = False
) -> Problem | None:
    """:func:`moment_problem` for an override's start or end; ``day``: see :func:`day_occurrence`,
    ``timed``: see :func:`timed_occurrence`."""
    if day and value is not None and _is_timed(value):
        return Problem(name, 'must be a date (YYYY-MM-DD) because this occurrence\'s "start" is one (all day)')
    if timed and value is not None and not _is_timed(value):
        return Problem(name, "must be a date and time with a UTC offset because this occurrence's \"start\" is "
                       "one (an occurrence of an all-day series given its own times)")
    return moment_problem(name, value, (all_day or day) and not timed)


def override_problems(o: Override, path: str, all_day: bool) -> list[Problem]:
    day = day_occurrence(o.start, all_day)
    timed = timed_occurrence(o.start, all_day)
    problems = [
        p
        for p in (
            moment_problem(_join(path, "recurrence_id"), o.recurrence_id, all_day),
            override_moment_problem(_join(path, "start"), o.start, all_day, day, timed),
            override_moment_problem(_join(path, "end"), o.end, all_day, day, timed),
        )
        if p
    ]
    if not problems and o.start is not None and o.end is not None and _before(o.end, o.start):
        problems.append(Problem(_join(path, "end"), f'is before "{_join(path, "start")}"'))
    if o.this_and_future and (day or timed):
        # As the calendar reader refuses RANGE=THISANDFUTURE on such an occurrence.
        problems.append(Problem(_join(path, "this_and_future"), "must be false for an occurrence whose start is "
                                "not of its series' kind (all-day or timed): RFC 5545 leaves open what that makes "
                                "of the later occurrences"))
    _texts(problems, path, subject=o.subject, description=o.description, location=o.location, status=o.status)
    if o.reminder_minutes is not None and abs(o.reminder_minutes) > INT_MAX:
        problems.append(Problem(_join(path, "reminder_minutes"), f"must be between -{INT_MAX} and {INT_MAX}"))
    if o.reminder_off and o.reminder_minutes is not None:
        problems.append(Problem(_join(path, "reminder_off"), 'contradicts "reminder_minutes" (choose one)'))
    return problems


def recurrence_problems(rec: Recurrence, start: Moment | None, all_day: bool) -> list[Problem]:
    problems: list[Problem] = []
    # A series of RDATEs only (RFC 5545 allows it) has no rule.
    problem = rrule_problem(rec.rrule, start) if rec.rrule or not rec.rdates else None
    if problem:
        problems.append(problem)
    for i, extra in enumerate(rec.extra_rrules):
        problem = rrule_problem(extra, start, f"recurrence.extra_rrules[{i}]")
        if problem:
            problems.append(problem)
    for key, moments in (("exdates", rec.exdates), ("rdates", rec.rdates)):
        for i, moment in enumerate(moments):
            problem = moment_problem(f"recurrence.{key}[{i}]", moment, all_day)
            if problem:
                problems.append(problem)
    for i, override in enumerate(rec.overrides):
        problems += override_problems(override, f"recurrence.overrides[{i}]", all_day)
    return problems


def zone_problem(zone: str | None, definition: str | None = None) -> Problem | None:
    """A ``timezone`` is an IANA name, or a calendar's own TZID together with its VTIMEZONE."""
    if definition is not None:
        return definition_problem(zone, definition)
    if zone is None:
        return None
    if not known_zone(zone):
        shown = zone if len(zone) <= 40 else zone[:37] + "..."
        return Problem("timezone", f"is not an IANA time zone name (such as Europe/Amsterdam): \"{shown}\"")
    return None


@lru_cache(maxsize=256)
def definition_problem(zone: str | None, definition: str) -> Problem | None:
    """A kept VTIMEZONE: the definition of the activity's own TZID, one icalendar builds a zone from."""
    field_name = "timezone_definition"
    if zone is None:
        return Problem(field_name, "needs the TZID it defines in timezone")
    wrong = text_problem("timezone", zone, limit=ZONE_MAX) or text_problem(field_name, definition, limit=DEFINITION_MAX)
    if wrong:
        return wrong
    if known_zone(zone):
        return Problem(field_name, f'must be empty for an IANA time zone ("{zone}")')
    # Imported here: these rules are loaded by every command, icalendar only by one that reads a zone.
    from icalendar import Timezone

    try:
        component = Timezone.from_ical(definition)
        if not isinstance(component, Timezone) or str(component.get("TZID", "")) != zone:
            raise ValueError(f'not the VTIMEZONE of "{zone}"')
        if not component.subcomponents:
            raise ValueError("it has no STANDARD or DAYLIGHT observance")
        component.to_tz(lookup_tzid=False)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        return Problem(field_name, f"is not a VTIMEZONE icalendar can read: {exc}")
    return None


@lru_cache(maxsize=1024)
def known_zone(name: str) -> bool:
    if not name or len(name) > ZONE_MAX or text_problem("", name):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def activity_problems(activity: Activity) -> list[Problem]:
    """Every rule ``activity`` breaks; empty when it is fine to store (and so to read back)."""
    problems: list[Problem] = []
    a = activity
    for problem in (
        text_problem("id", a.id, required=True, limit=ID_MAX),
        text_problem("owner", a.owner, required=True, limit=EMAIL_MAX),
        text_problem("subject", a.subject),
        text_problem("parent_id", a.parent_id, limit=ID_MAX),
        zone_problem(a.timezone, a.timezone_definition),
    ):
        if problem:
            problems.append(problem)
    _texts(problems, "", description=a.description, status=a.status, type=a.type, priority=a.priority,
           location=a.location, place=a.place, project=a.project, close_reason=a.close_reason)
    for i, p in enumerate(a.participants):
        problems += participant_problems(p, f"participants[{i}]")
    for i, g in enumerate(a.regarding):
        problems += regarding_problems(g, f"regarding[{i}]")
    if a.organizer is not None:
        problems += participant_problems(a.organizer, "organizer")
        if a.organizer.email is None:
            problems.append(Problem("organizer.email", "is required (an organizer is known by e-mail)"))
    problems += categories_problems(a.categories)
    for i, attachment in enumerate(a.attachments):
        problems += attachment_problems(attachment, f"attachments[{i}]")
    problems += extra_problems(a.extra)
    # Negative: the alarm rings after the start (a to-do's "before the deadline", RFC 5545 allows both).
    if a.reminder_minutes is not None and abs(a.reminder_minutes) > INT_MAX:
        problems.append(Problem("reminder_minutes", f"must be between -{INT_MAX} and {INT_MAX}"))
    problems += _schedule_problems(a)
    return problems


def _schedule_problems(activity: Activity) -> list[Problem]:
    problems: list[Problem] = []
    for name in ("start", "end", "due"):
        problem = moment_problem(name, getattr(activity, name), activity.all_day)
        if problem:
            problems.append(problem)
    for name in ("completed_at", "updated_at", "created_at"):
        value = getattr(activity, name)
        if value is not None:
            problem = moment_problem(name, value, all_day=False)
            if problem:
                problems.append(problem)
    if problems:
        return problems
    if activity.end is not None and activity.start is None:
        problems.append(Problem("start", 'is required when "end" is given'))
    if activity.all_day and activity.start is None and activity.kind in EVENT_KINDS:
        problems.append(Problem("start", f"is required for an all-day {activity.kind}"))
    if activity.start is not None and activity.end is not None and _before(activity.end, activity.start):
        problems.append(Problem("end", 'is before "start"'))
    if (
        activity.kind is Kind.TASK and activity.start is not None and activity.due is not None
        and _before(activity.due, activity.start)
    ):
        # A VTODO's DUE must not precede its DTSTART (RFC 5545 3.8.2.3): no calendar would take it back.
        problems.append(Problem("due", 'is before "start"'))
    if activity.recurrence is not None:
        if activity.start is None:
            problems.append(Problem("recurrence", 'needs "start" (the first occurrence)'))
        problems += recurrence_problems(activity.recurrence, activity.start, activity.all_day)
    return problems


def _before(a: Moment, b: Moment) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        # As instants: two times of one zone compare on the wall clock (PEP 495), which puts 02:15 in
        # the second pass of a repeated hour after 02:45 in its first.
        return a.astimezone(UTC) < b.astimezone(UTC)
    if not isinstance(a, datetime) and not isinstance(b, datetime):
        return a < b
    return False


def check_activity(activity: Activity) -> None:
    """ValidationError naming every rule ``activity`` breaks (end before start, all-day dates, ...)."""
    problems = activity_problems(activity)
    if problems:
        raise ValidationError("\n".join(f'activity "{activity.id}": {p}' for p in problems))
