"""Test data for the store tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine, text

from syncd.model import (
    Activity,
    Direction,
    Kind,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
    Regarding,
    RegardingKind,
    Response,
    Role,
)


def at(value: str) -> datetime:
    """An aware datetime from ISO text (UTC when no offset is given)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def meeting(id: str = "A-1", owner: str = "anna@example.com", **changes: object) -> Activity:
    """A weekly sales meeting with everything an activity can carry."""
    base = Activity(
        id=id,
        kind=Kind.APPOINTMENT,
        subject="Wekelijks salesoverleg",
        owner=owner,
        description="Pipeline doornemen; offerte Żółć & Zoon bespreken",
        start=at("2026-03-02T09:00:00+01:00"),
        end=at("2026-03-02T10:00:00+01:00"),
        timezone="Europe/Amsterdam",
        status="planned",
        type="sales meeting",
        priority="normal",
        direction=Direction.OUTBOUND,
        location="Vergaderzaal 2",
        place="Keizersgracht 1, Amsterdam",
        project="Uitrol 2026",
        reminder_minutes=15,
        recurrence=Recurrence(
            "FREQ=WEEKLY;BYDAY=MO",
            exdates=(at("2026-03-09T09:00:00+01:00"),),
            overrides=(
                Override(at("2026-03-16T09:00:00+01:00"), start=at("2026-03-16T11:00:00+01:00"),
                         end=at("2026-03-16T12:00:00+01:00"), subject="Salesoverleg (verschoven)"),
            ),
        ),
        participants=(
            Participant(ParticipantKind.USER, "bart@example.com", "Bart Jansen", Role.REQUIRED, Response.ACCEPTED),
            Participant(ParticipantKind.CONTACT, "dana@klant.example", "דנה לוי", Role.OPTIONAL, Response.TENTATIVE),
            Participant(ParticipantKind.EXTERNAL, None, "Tomasz Wiśniewski"),
        ),
        regarding=(
            Regarding(RegardingKind.ACCOUNT, "ACC-7", "Żółć & Zoon"),
            Regarding(RegardingKind.OPPORTUNITY, "OPP-3", None),
        ),
        parent_id="A-0",
        close_reason=None,
    )
    return base.replace(**changes)


def day_off(id: str = "D-1", owner: str = "anna@example.com") -> Activity:
    return Activity(id=id, kind=Kind.APPOINTMENT, subject="Koningsdag", owner=owner, all_day=True,
                    start=date(2026, 4, 27), end=date(2026, 4, 28))


def change_rows(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT seq, activity_id, op FROM activity_changes ORDER BY seq"))]
