"""The repository: activities in and out of the store, CRM rules, people, per-user queries."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.errors import RuleViolation, ValidationError
from syncd.model import (
    Activity,
    CrmUser,
    Kind,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
)
from syncd.store import repository
from syncd.store.repository import Saved

from .helpers import at, day_off, meeting


def test_saved_activity_reads_back_equal(session: Session, owner: str) -> None:
    """Every field survives the store, including recurrence, participants and regarding links."""
    original = meeting(owner=owner)
    assert repository.save_activity(session, original) is Saved.CREATED
    session.commit()
    session.expunge_all()

    loaded = repository.get_activity(session, "A-1")

    assert loaded is not None
    assert loaded.replace(updated_at=None, created_at=None) == original
    assert loaded.start == at("2026-03-02T08:00:00") and loaded.start.tzinfo is not None
    assert loaded.start.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert loaded.updated_at is not None and loaded.updated_at.tzinfo is not None


def test_all_day_dates_come_back_as_dates(session: Session, owner: str) -> None:
    repository.save_activity(session, day_off(owner=owner))
    session.commit()
    session.expunge_all()

    loaded = repository.get_activity(session, "D-1")

    assert loaded is not None
    assert (type(loaded.start), loaded.start, loaded.end) == (date, date(2026, 4, 27), date(2026, 4, 28))


def test_owner_must_be_a_crm_user(session: Session, owner: str) -> None:
    with pytest.raises(ValidationError, match='field "owner": no CRM user with e-mail "nobody@example.com"'):
        repository.save_activity(session, meeting(owner="nobody@example.com"))


def test_owner_is_matched_case_insensitively(session: Session, owner: str) -> None:
    repository.save_activity(session, meeting(owner="ANNA@Example.com"))
    session.commit()

    assert repository.list_activity_ids(session, owner="anna@EXAMPLE.com") == ["A-1"]


def test_end_before_start_is_refused(session: Session, owner: str) -> None:
    bad = meeting(owner=owner, end=at("2026-03-02T07:00:00+01:00"))

    with pytest.raises(ValidationError, match='activity "A-1": field "end": is before "start"'):
        repository.save_activity(session, bad)


def test_all_day_activity_needs_dates(session: Session, owner: str) -> None:
    bad = day_off(owner=owner).replace(start=at("2026-04-27T00:00:00"))

    with pytest.raises(ValidationError, match=r'field "start": must be a date \(YYYY-MM-DD\) because all_day is true'):
        repository.save_activity(session, bad)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"status": "done"}, 'status "done"'),
        ({"status": "Succeeded"}, 'status "Succeeded"'),
        ({"completed_at": at("2026-03-02T10:00:00")}, "completed at 2026-03-02T10:00:00+00:00"),
    ],
)
def test_completed_activity_cannot_be_deleted(session: Session, owner: str, changes: dict, why: str) -> None:
    repository.save_activity(session, meeting(owner=owner, **changes))
    session.commit()

    with pytest.raises(RuleViolation, match=re.escape(f'activity "A-1" is completed ({why})')):
        repository.delete_activity(session, "A-1")
    session.rollback()

    assert repository.get_activity(session, "A-1") is not None


def test_completed_statuses_are_configurable(session: Session, owner: str) -> None:
    repository.save_activity(session, meeting(owner=owner, status="afgerond"))

    with pytest.raises(RuleViolation):
        repository.delete_activity(session, "A-1", completed_statuses={"afgerond"})
    assert repository.delete_activity(session, "A-1", completed_statuses={"done"}) is True


def test_open_activity_is_deleted_with_its_children(session: Session, engine: Engine, owner: str) -> None:
    repository.save_activity(session, meeting(owner=owner))
    session.commit()

    assert repository.delete_activity(session, "A-1") is True
    session.commit()

    assert repository.get_activity(session, "A-1") is None
    assert repository.delete_activity(session, "A-1") is False
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM activity_participants")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM activity_regarding")).scalar() == 0


def test_participants_create_missing_users_and_contacts(session: Session, owner: str) -> None:
    repository.save_activity(session, meeting(owner=owner))
    session.commit()

    people = repository.directory(session)

    assert people.users == {"anna@example.com": "Anna de Vries", "bart@example.com": "Bart Jansen"}
    assert people.contacts == {"dana@klant.example": "דנה לוי"}
    assert people.classify("BART@example.com") is ParticipantKind.USER


def test_user_emails_are_unique_in_any_case(session: Session, engine: Engine, owner: str) -> None:
    with pytest.raises(ValidationError, match="already exists"):
        repository.add_user(session, CrmUser("Anna@Example.COM"))
    session.rollback()
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email) VALUES ('ANNA@example.com')"))


def test_replacing_participants_and_updated_at(session: Session, owner: str) -> None:
    """A changed save moves updated_at; saving the same content again changes nothing."""
    repository.save_activity(session, meeting(owner=owner))
    session.commit()
    first = repository.get_activity(session, "A-1")
    assert first is not None

    assert repository.save_activity(session, first) is Saved.UNCHANGED
    fewer = first.replace(participants=(Participant(ParticipantKind.EXTERNAL, "x@elsewhere.example", "X"),))
    assert repository.save_activity(session, fewer) is Saved.UPDATED
    session.commit()
    session.expunge_all()

    second = repository.get_activity(session, "A-1")
    assert second is not None
    assert second.participants == fewer.participants
    assert second.updated_at is not None and first.updated_at is not None
    assert second.updated_at > first.updated_at


def test_activities_for_user_owned_or_participating(session: Session, owner: str) -> None:
    repository.add_user(session, CrmUser("carla@example.com"))
    repository.save_activity(session, meeting("A-1", owner=owner))  # Bart takes part
    repository.save_activity(session, day_off("D-1", owner=owner))
    repository.save_activity(session, meeting("A-2", owner="carla@example.com", participants=(), recurrence=None))
    task = Activity(id="T-1", kind=Kind.TASK, subject="Offerte sturen", owner="carla@example.com",
                    due=at("2026-05-01T12:00:00"))
    repository.save_activity(session, task)
    session.commit()

    def ids(email: str, **kw: object) -> list[str]:
        return [a.id for a in repository.activities_for_user(session, email, **kw)]  # type: ignore[arg-type]

    assert ids("anna@example.com") == ["A-1", "D-1"]
    assert ids("BART@example.com") == ["A-1"]
    assert ids("carla@example.com") == ["A-2", "T-1"]
    assert ids("carla@example.com", kinds={Kind.TASK}) == ["T-1"]
    assert ids("nobody@example.com") == []
    april = (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
    assert ids("anna@example.com", window=april) == ["A-1", "D-1"]  # the series runs on
    assert ids("carla@example.com", window=april) == []  # meeting in March, task due in May
    assert ids("anna@example.com", ids=["D-1", "A-2", "missing"]) == ["D-1"]


def test_reading_many_activities_takes_a_fixed_number_of_queries(
    session: Session, engine: Engine, owner: str
) -> None:
    for n in range(30):
        repository.save_activity(session, meeting(f"A-{n:02}", owner=owner))
    session.commit()
    session.expunge_all()
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    loaded = repository.get_activities(session, [f"A-{n:02}" for n in range(30)])

    assert len(loaded) == 30
    assert len(statements) <= 8, statements


def test_all_day_series_keeps_dates_in_exdates_and_overrides(session: Session, owner: str) -> None:
    series = day_off(owner=owner).replace(
        recurrence=Recurrence(
            "FREQ=YEARLY;COUNT=5",
            exdates=(date(2027, 4, 27),),
            overrides=(Override(date(2028, 4, 27), start=date(2028, 4, 26), end=date(2028, 4, 27)),),
        )
    )
    repository.save_activity(session, series)
    session.commit()
    session.expunge_all()

    loaded = repository.get_activity(session, "D-1")

    assert loaded is not None and loaded.recurrence == series.recurrence
