"""Import and export of activities in the JSON Lines exchange format (:mod:`syncd.activity_json`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy.orm import Session

from syncd.activity_json import InvalidActivities, split_jsonl, write_jsonl
from syncd.errors import ValidationError
from syncd.model import Activity, ParticipantKind
from syncd.store.repository import (
    People,
    Saved,
    iter_activities,
    load_rows,
    write_activity,
)
from syncd.store.rules import activity_problems


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    users_created: tuple[str, ...]
    """E-mails of CRM users created because a participant of kind user named them."""
    contacts_created: tuple[str, ...]


def _problems(session: Session, activities: Sequence[Activity], lines: Sequence[int], people: People) -> list[str]:
    messages: list[str] = []
    first_line: dict[str, int] = {}
    named_users = {
        p.email.lower() for a in activities for p in a.participants if p.kind is ParticipantKind.USER and p.email
    }
    for line, activity in zip(lines, activities, strict=True):
        messages += [f"line {line}: {p}" for p in activity_problems(activity)]
        if activity.id in first_line:
            messages.append(f'line {line}: field "id": "{activity.id}" is already on line {first_line[activity.id]}')
        first_line.setdefault(activity.id, line)
        if people.user(activity.owner) is None and activity.owner.lower() not in named_users:
            messages.append(
                f'line {line}: field "owner": "{activity.owner}" is not a CRM user; add the user first, or name '
                'them in this file as a participant of kind "user"'
            )
    return messages


def import_activities(
    session: Session,
    activities: Sequence[Activity],
    *,
    lines: Sequence[int] | None = None,
    earlier_problems: Sequence[str] = (),
) -> ImportResult:
    """Upsert ``activities`` by id in one transaction, and commit it.

    Every activity is checked before anything is written; any problem rejects the whole batch with an
    :class:`InvalidActivities` naming each line (``lines`` gives the line numbers; default 1, 2, ...)
    and the store is left as it was (``earlier_problems``, such as a file's unreadable lines, are
    reported with them). Users and contacts that participants name by e-mail are created
    when missing; an owner must be a CRM user already or be named in the batch as a user participant.
    """
    numbers = list(lines) if lines is not None else list(range(1, len(activities) + 1))
    try:
        people = People(session)
        people.load(activities)
        messages = [*earlier_problems, *_problems(session, activities, numbers, people)]
        if messages:
            raise InvalidActivities(sorted(messages, key=_line_number))
        for activity in activities:
            for p in activity.participants:
                if p.kind is ParticipantKind.USER and p.email:
                    people.ensure_user(p.email, p.name)
        rows = load_rows(session, [a.id for a in activities])
        outcomes: dict[Saved, list[str]] = {saved: [] for saved in Saved}
        for line, activity in zip(numbers, activities, strict=True):
            try:
                outcomes[write_activity(session, activity, rows.get(activity.id), people)].append(activity.id)
            except ValidationError as exc:
                raise InvalidActivities([f"line {line}: {exc}"]) from exc
        session.flush()
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return ImportResult(
        created=tuple(outcomes[Saved.CREATED]),
        updated=tuple(outcomes[Saved.UPDATED]),
        unchanged=tuple(outcomes[Saved.UNCHANGED]),
        users_created=tuple(people.created_users),
        contacts_created=tuple(people.created_contacts),
    )


def _line_number(message: str) -> int:
    head = message.split(":", 1)[0]
    return int(head.removeprefix("line ")) if head.startswith("line ") else 0


def import_jsonl(session: Session, text: str) -> ImportResult:
    """Import a JSON Lines text (``syncd activities import``), reporting every problem by file line."""
    numbered, problems = split_jsonl(text)
    return import_activities(
        session, [a for _, a in numbered], lines=[n for n, _ in numbered], earlier_problems=problems
    )


def export_activities(session: Session, stream: TextIO) -> int:
    """Write every activity, ordered by id, as JSON Lines; returns how many."""
    return write_jsonl(iter_activities(session), stream)
