"""The CRM's rules for an activity, as pure checks shared by the exchange format and the repository."""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from syncd.model import EVENT_KINDS, Activity, Moment

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
    """A date where a date belongs (all-day), an aware datetime everywhere else."""
    if value is None:
        return None
    if all_day and _is_timed(value):
        return Problem(name, "must be a date (YYYY-MM-DD) because all_day is true")
    if not all_day:
        if not _is_timed(value):
            return Problem(name, "must be a date and time with a UTC offset because all_day is false")
        assert isinstance(value, datetime)
        if value.tzinfo is None or value.utcoffset() is None:
            return Problem(name, "needs a UTC offset (for example +02:00 or Z)")
    return None


def activity_problems(activity: Activity) -> list[Problem]:
    """Every rule ``activity`` breaks; empty when it is fine to store."""
    problems: list[Problem] = []
    for name in ("start", "end", "due"):
        problem = moment_problem(name, getattr(activity, name), activity.all_day)
        if problem:
            problems.append(problem)
    if activity.completed_at is not None:
        problem = moment_problem("completed_at", activity.completed_at, all_day=False)
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
    if activity.recurrence is not None and activity.start is None:
        problems.append(Problem("recurrence", 'needs "start" (the first occurrence)'))
    if not activity.owner:
        problems.append(Problem("owner", "is required"))
    if activity.reminder_minutes is not None and activity.reminder_minutes < 0:
        problems.append(Problem("reminder_minutes", "must not be negative"))
    if activity.timezone is not None and not known_zone(activity.timezone):
        problems.append(Problem("timezone", f"{activity.timezone!r} is not an IANA time zone (such as Europe/Amsterdam)"))
    return problems


@lru_cache(maxsize=1024)
def known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _before(a: Moment, b: Moment) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a < b
    if not isinstance(a, datetime) and not isinstance(b, datetime):
        return a < b
    return False


