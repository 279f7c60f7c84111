"""What syncd stores, it can always load again: any activity the rules accept (messy text, odd
participants, extreme years, runaway rules) is saved, read back unchanged and passes the same rules;
and what they refuse is refused with a ValidationError, never a driver error. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import text
from sqlalchemy.orm import Session
from strategies import broken_activities, messy_activities

from syncd.activity_json import activity_from_json, activity_to_json
from syncd.errors import ValidationError
from syncd.mapping.fingerprint import fingerprint
from syncd.model import (
    CONTENT_FIELDS,
    Activity,
    CrmUser,
    Kind,
    Participant,
    ParticipantKind,
    Recurrence,
)
from syncd.store import repository
from syncd.store.rules import activity_problems

OWNER = "anna@example.com"
STORE_SETTINGS = settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


def content(a: Activity) -> dict[str, object]:
    return {name: _instants(getattr(a, name)) for name in ("id", *CONTENT_FIELDS)}


def _instants(value: object) -> object:
    """Times as UTC instants, at any depth. The store keeps instants, and PEP 495 makes a wall time in
    a DST gap or fold unequal to the same instant in any other zone: 02:00 on the spring-forward night
    in Amsterdam is 01:00 UTC, yet never == to it."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if isinstance(value, tuple):
        return tuple(_instants(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value), {f.name: _instants(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def reload(session: Session, ident: str) -> Activity:
    """The activity as the database holds it, not as the session remembers it."""
    session.commit()
    session.expunge_all()
    loaded = repository.get_activity(session, ident)
    assert loaded is not None
    return loaded


@STORE_SETTINGS
@given(activity=messy_activities(owner=OWNER))
def test_what_the_rules_accept_is_stored_and_read_back(session: Session, owner: str, activity: Activity) -> None:
    assert activity_problems(activity) == []
    new = repository.get_activity(session, activity.id) is None
    repository.save_activity(session, activity)
    loaded = reload(session, activity.id)

    repository.check_activity(loaded)  # what the store holds, the engine reads
    assert content(loaded) == content(activity.replace(project=activity.project or None))
    if new:
        assert loaded.created_at == (activity.created_at or loaded.created_at)
        assert loaded.updated_at == (activity.updated_at or loaded.updated_at)
    assert fingerprint(loaded) == fingerprint(activity)
    # The engine keeps a link's merge base in the exchange format.
    base = activity_from_json(activity_to_json(loaded))
    assert content(base) == content(loaded)


@settings(STORE_SETTINGS, max_examples=40)
@given(case=broken_activities(kinds=tuple(Kind)))
def test_what_the_rules_refuse_is_refused_before_the_database(session: Session, owner: str, case: tuple[str, Activity]) -> None:
    what, activity = case
    assert activity_problems(activity), what
    with pytest.raises(ValidationError):
        repository.save_activity(session, activity.replace(owner=OWNER) if what != "blank owner" else activity)
    session.rollback()


@pytest.mark.parametrize(
    "moment",
    [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(999, 7, 1, 12, tzinfo=UTC)],
)
def test_any_year_round_trips(session: Session, owner: str, moment: datetime) -> None:
    """.NET's DateTime.MinValue (CREATED:00010101T000000Z) and MaxValue, in every timestamp column."""
    a = Activity("Y", Kind.TASK, "s", owner, start=moment, due=moment, completed_at=moment, created_at=moment, updated_at=moment)
    repository.save_activity(session, a)
    loaded = reload(session, "Y")
    assert (loaded.start, loaded.due, loaded.completed_at, loaded.created_at, loaded.updated_at) == (moment,) * 5
    day = Activity("D", Kind.APPOINTMENT, "s", owner, all_day=True, start=date(1, 1, 1), end=date(9999, 12, 31))
    repository.save_activity(session, day)
    assert (reload(session, "D").start, reload(session, "D").end) == (date(1, 1, 1), date(9999, 12, 31))


def test_a_year_written_without_its_leading_zeros_is_read(session: Session, owner: str) -> None:
    """Earlier versions wrote year 1 on SQLite as ``1-01-01 ...``."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("a SQLite text format")
    repository.save_activity(session, Activity("Y", Kind.TASK, "s", owner))
    session.execute(text("UPDATE activities SET created_at = '1-01-01 00:00:00.000000' WHERE id = 'Y'"))
    assert reload(session, "Y").created_at == datetime(1, 1, 1, tzinfo=UTC)


def test_a_participant_without_a_name_keeps_none(session: Session, owner: str) -> None:
    """The linked user's name fills in only for a row that names nobody (a CRM's plain SQL set just
    the foreign key); a saved ``None`` reads back as ``None``, or every pull looks like a change."""
    bart = Participant(ParticipantKind.USER, "bart@example.com", "Bart Jansen")
    repository.save_activity(session, Activity("A", Kind.CALL, "s", owner, participants=(bart,)))
    nameless = Participant(ParticipantKind.USER, "Bart@Example.com")
    repository.save_activity(session, Activity("B", Kind.CALL, "s", owner, participants=(nameless,)))
    assert reload(session, "B").participants == (nameless,)
    session.execute(text("UPDATE activity_participants SET email = NULL, name = NULL WHERE activity_id = 'B'"))
    assert reload(session, "B").participants == (Participant(ParticipantKind.USER, "bart@example.com", "Bart Jansen"),)


def test_non_ascii_upper_case_emails_find_their_row(session: Session, owner: str) -> None:
    """SQL lower() may fold only ASCII (SQLite, PostgreSQL in the C locale); Python folds all. Saving a
    participant ZOË@... twice must find the contact the first save made, not insert it again."""
    zoe = Participant(ParticipantKind.CONTACT, "ZOË@example.com", "Zoë")
    for ident in ("A", "B"):
        repository.save_activity(session, Activity(ident, Kind.CALL, "s", owner, participants=(zoe,)))
        session.commit()
    repository.add_user(session, CrmUser("ÉMILE@example.com"))
    repository.save_activity(session, Activity("C", Kind.CALL, "s", "ÉMILE@example.com"))
    assert reload(session, "C").owner == "ÉMILE@example.com"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("UPDATE activities SET rrule = '' WHERE id = 'R'", 'field "recurrence.rrule": must not be empty'),
        ("UPDATE activities SET exdates = '[42]' WHERE id = 'R'", "stored recurrence is malformed"),
        ("UPDATE activities SET overrides = '[{\"start\": \"x\"}]' WHERE id = 'R'", "stored recurrence is malformed"),
        ("UPDATE activity_participants SET email = NULL, name = '' WHERE activity_id = 'R'", 'needs an "email" or a "name"'),
        ("UPDATE activities SET timezone = 'Mars/Olympus' WHERE id = 'R'", 'field "timezone"'),
    ],
)
def test_a_row_the_rules_refuse_is_a_validation_error(session: Session, owner: str, sql: str, message: str) -> None:
    """What a CRM's own SQL wrote is read by the rules every path shares: an error naming the
    activity and the field (the engine records it against that item), never another exception."""
    series = Activity("R", Kind.CALL, "s", owner, start=datetime(2026, 3, 2, 9, tzinfo=UTC),
                      recurrence=Recurrence("FREQ=DAILY"), participants=(Participant(ParticipantKind.EXTERNAL, None, "Tolk"),))
    repository.save_activity(session, series)
    session.commit()
    session.execute(text(sql))
    session.commit()
    session.expunge_all()
    with pytest.raises(ValidationError, match=message):
        (row,) = repository.load_rows(session, ["R"]).values()
        repository.check_activity(repository.to_activity(row))
