"""The seeds' remaining fields and the added recurrence parts, through the exchange format and the store
(SQLite and PostgreSQL): an import keeps them, the store reads them back, revision 0005 upgrades a
store that holds data, and what the rules refuse is refused with the line and the field."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from syncd.activity_json import InvalidActivities, activity_to_json
from syncd.errors import ValidationError
from syncd.model import (
    Activity,
    Attachment,
    Kind,
    Participant,
    ParticipantKind,
    Recurrence,
    Sensitivity,
    ShowAs,
)
from syncd.store import repository
from syncd.store.changefeed import current_cursor
from syncd.store.db import alembic_config, make_engine
from syncd.store.importer import export_activities, import_jsonl

AMS = ZoneInfo("Europe/Amsterdam")

#: Seed 004 (Aptus): an event with an amount, a product, attachments, participating persons, a
#: reserved room and categories from two dictionaries; organized by a partner outside the CRM.
APTUS = {
    "id": "APT-1", "kind": "appointment", "subject": "Demo bij klant", "owner": "anna@example.com",
    "start": "2026-12-03T10:00:00+01:00", "end": "2026-12-03T11:30:00+01:00", "timezone": "Europe/Amsterdam",
    "status": "planned", "type": "demo",
    "sensitivity": "confidential", "show_as": "out_of_office",
    "categories": ["Regio Noord", "Product: Aptus CRM"],
    "attachments": [{"url": "https://crm.example.com/files/offerte-17.pdf", "name": "Offerte 17.pdf"},
                    {"url": "https://crm.example.com/files/plan", "name": None}],
    "extra": {"amount": 12500.5, "product": "Aptus CRM", "licences": 12, "signed": False, "note": None},
    "organizer": {"kind": "external", "email": "board@partner.example", "name": "Partner Board"},
    "participants": [
        {"kind": "contact", "email": "jan@klant.nl", "name": "Jan"},
        {"kind": "resource", "email": "zaal-1@example.com", "name": "Zaal 1"},
        {"kind": "resource", "name": "Beamer 2"},
        {"kind": "group", "email": "sales@example.com", "name": "Sales"},
    ],
    "recurrence": {"rrule": "FREQ=WEEKLY;BYDAY=TH;COUNT=4", "exdates": [],
                   "rdates": ["2026-12-05T10:00:00+01:00"], "extra_rrules": ["FREQ=MONTHLY;BYMONTHDAY=1;COUNT=2"]},
}


def test_an_import_keeps_every_new_field_and_the_export_gives_it_back(session: Session, owner: str) -> None:
    result = import_jsonl(session, json.dumps(APTUS) + "\n")
    session.commit()
    assert result.created == ("APT-1",)
    session.expunge_all()
    stored = repository.get_activity(session, "APT-1")
    assert stored is not None
    assert stored.sensitivity is Sensitivity.CONFIDENTIAL and stored.show_as is ShowAs.OUT_OF_OFFICE
    assert stored.categories == ("Regio Noord", "Product: Aptus CRM")
    assert stored.attachments == (
        Attachment("https://crm.example.com/files/offerte-17.pdf", "Offerte 17.pdf"),
        Attachment("https://crm.example.com/files/plan"),
    )
    assert stored.extra == {"amount": 12500.5, "product": "Aptus CRM", "licences": 12, "signed": False, "note": None}
    assert stored.organizer == Participant(ParticipantKind.EXTERNAL, "board@partner.example", "Partner Board")
    assert [(p.kind, p.email, p.name) for p in stored.participants] == [
        (ParticipantKind.CONTACT, "jan@klant.nl", "Jan"),
        (ParticipantKind.RESOURCE, "zaal-1@example.com", "Zaal 1"),
        (ParticipantKind.RESOURCE, None, "Beamer 2"),
        (ParticipantKind.GROUP, "sales@example.com", "Sales"),
    ]
    assert stored.recurrence is not None
    assert stored.recurrence.rdates == (datetime(2026, 12, 5, 10, tzinfo=AMS),)
    assert stored.recurrence.extra_rrules == ("FREQ=MONTHLY;BYMONTHDAY=1;COUNT=2",)
    stream = io.StringIO()
    export_activities(session, stream)
    exported = json.loads(stream.getvalue())
    for key in ("sensitivity", "show_as", "categories", "attachments", "extra", "organizer", "participants"):
        assert exported[key] == activity_to_json(stored)[key]
    assert exported["extra"]["amount"] == 12500.5 and exported["recurrence"]["rdates"] == APTUS["recurrence"]["rdates"]
    # Imported again unchanged, nothing changes (every field reads back exactly as it was written).
    before = current_cursor(session)
    assert import_jsonl(session, stream.getvalue()).unchanged == ("APT-1",)
    assert current_cursor(session) == before


def test_an_activity_without_the_new_fields_exports_them_empty(session: Session, owner: str) -> None:
    repository.save_activity(session, Activity("plain", Kind.TASK, "Bellen", owner))
    session.commit()
    stream = io.StringIO()
    export_activities(session, stream)
    line = json.loads(stream.getvalue())
    assert {k: line[k] for k in ("sensitivity", "show_as", "categories", "attachments", "extra", "organizer")} == {
        "sensitivity": None, "show_as": None, "categories": [], "attachments": [], "extra": {}, "organizer": None,
    }
    assert line["timezone_definition"] is None


#: A calendar's own zone no IANA zone follows (+10:30, +11:30 from 7 October to 29 March).
MADE_UP = (
    "BEGIN:VTIMEZONE\r\nTZID:Made up\r\nBEGIN:STANDARD\r\nDTSTART:20000329T020000\r\nTZOFFSETFROM:+1130\r\n"
    "TZOFFSETTO:+1030\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=29\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n"
    "DTSTART:20001007T020000\r\nTZOFFSETFROM:+1030\r\nTZOFFSETTO:+1130\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=7\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)


def test_a_calendars_own_zone_is_kept_with_its_definition(session: Session, owner: str) -> None:
    """Imported, stored and exported: the series' times still shown on that zone's clock."""
    series = {
        "id": "own-zone", "kind": "appointment", "subject": "Stand-up", "owner": owner,
        "start": "2026-01-05T09:00:00+11:30", "end": "2026-01-05T09:15:00+11:30",
        "timezone": "Made up", "timezone_definition": MADE_UP,
        "recurrence": {"rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "exdates": ["2026-04-07T09:00:00+10:30"]},
    }
    import_jsonl(session, json.dumps(series) + "\n")
    session.commit()
    stored = repository.get_activity(session, "own-zone")
    assert stored is not None and (stored.timezone, stored.timezone_definition) == ("Made up", MADE_UP)
    stream = io.StringIO()
    export_activities(session, stream)
    line = json.loads(stream.getvalue())
    assert {k: line[k] for k in ("start", "end", "timezone", "timezone_definition")} == {
        k: series[k] for k in ("start", "end", "timezone", "timezone_definition")
    }
    assert line["recurrence"]["exdates"] == ["2026-04-07T09:00:00+10:30"]


def test_a_series_of_added_dates_only_is_kept(session: Session, owner: str) -> None:
    start = date(2026, 12, 24)
    series = Activity("rd", Kind.APPOINTMENT, "Feestdagen", owner, start=start, all_day=True,
                      recurrence=Recurrence("", rdates=(date(2026, 12, 26), date(2026, 12, 31))))
    repository.save_activity(session, series)
    session.commit()
    session.expunge_all()
    stored = repository.get_activity(session, "rd")
    assert stored is not None and stored.recurrence == series.recurrence


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"categories": ["a\tb"]}, 'field "categories[0]": must not contain control characters'),
        ({"categories": [7]}, 'field "categories[0]": must be a string, not 7'),
        ({"attachments": [{"url": "data:text/plain;base64,aGk="}]}, 'field "attachments[0].url": must link to a file'),
        ({"attachments": [{"url": "offer.pdf"}]}, 'field "attachments[0].url": must be an absolute URI'),
        ({"attachments": [{"link": "https://x"}]}, 'field "attachments[0].link": unknown field'),
        ({"extra": {"amount": [1, 2]}}, 'field "extra.amount": must be a string, number, true, false or null'),
        ({"extra": "12500"}, 'field "extra": must be an object, not "12500"'),
        ({"sensitivity": "secret"}, 'field "sensitivity": must be one of normal|private|confidential, not "secret"'),
        ({"show_as": "away"}, 'field "show_as": must be one of busy|free|tentative|out_of_office, not "away"'),
        ({"timezone": "Made up"}, 'field "timezone": is not an IANA time zone name'),
        ({"timezone": "Made up", "timezone_definition": "BEGIN:VEVENT\r\nEND:VEVENT\r\n"},
         'field "timezone_definition": is not a VTIMEZONE icalendar can read'),
        ({"timezone": "Other", "timezone_definition": MADE_UP},
         'field "timezone_definition": is not a VTIMEZONE icalendar can read: not the VTIMEZONE of "Other"'),
        ({"timezone_definition": MADE_UP}, 'field "timezone_definition": must be empty for an IANA time zone'),
        ({"organizer": {"name": "Bob"}}, 'field "organizer.email": is required'),
        ({"recurrence": {"rrule": "FREQ=DAILY", "rdates": ["2026-12-05"]}},
         'field "recurrence.rdates[0]": must be a date and time with a UTC offset because all_day is false'),
        ({"recurrence": {"rrule": "FREQ=DAILY", "extra_rrules": ["BYDAY=MO"]}},
         'field "recurrence.extra_rrules[0]": needs FREQ'),
    ],
)
def test_what_the_rules_refuse_names_the_line_and_the_field(
    session: Session, owner: str, change: dict, message: str
) -> None:
    with pytest.raises(InvalidActivities) as caught:
        import_jsonl(session, json.dumps({**APTUS, **change}) + "\n")
    assert any(m.startswith(f"line 1: {message}") for m in caught.value.messages), caught.value.messages


def test_revision_0005_upgrades_a_store_with_data_and_keeps_tracking_participants(empty_store_url: str) -> None:
    """From 0004 with an activity and a participant: the participant survives the rebuilt table (SQLite),
    a resource can be added, and writes to participants still reach the change log (its triggers)."""
    engine = make_engine(empty_store_url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0004")
            conn.execute(text("INSERT INTO users (id, email) VALUES (1, 'anna@example.com')"))
            conn.execute(text(
                "INSERT INTO activities (id, kind, subject, all_day, owner_id, created_at)"
                " VALUES ('a1', 'task', 'Bellen', false, 1, :now)"), {"now": _stamp(engine)})
            conn.execute(text(
                "INSERT INTO activity_participants (activity_id, position, kind, email, role, response)"
                " VALUES ('a1', 0, 'contact', 'jan@klant.nl', 'required', 'accepted')"))
            command.upgrade(config, "0005")
        with engine.begin() as conn:
            before = conn.execute(text("SELECT max(seq) FROM activity_changes")).scalar()
            conn.execute(text(
                "INSERT INTO activity_participants (activity_id, position, kind, name, role, response)"
                " VALUES ('a1', 1, 'resource', 'Zaal 1', 'required', 'needs-action')"))
            after = conn.execute(text("SELECT max(seq) FROM activity_changes")).scalar()
            assert after > before
        with Session(engine) as session:
            stored = repository.get_activity(session, "a1")
            assert stored is not None
            assert [(p.kind, p.email or p.name) for p in stored.participants] == [
                (ParticipantKind.CONTACT, "jan@klant.nl"), (ParticipantKind.RESOURCE, "Zaal 1"),
            ]
            assert (stored.categories, stored.extra, stored.organizer) == ((), {}, None)
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0004")
            kinds = conn.execute(text("SELECT kind FROM activity_participants")).scalars().all()
            assert kinds == ["contact"]  # a resource has no place in 0004's participants
    finally:
        engine.dispose()


def _stamp(engine: object) -> object:
    now = datetime(2026, 11, 29, 9, tzinfo=UTC)
    dialect = engine.dialect.name
    return now.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else now


def test_a_crm_writing_plain_sql_may_leave_the_new_columns_null(engine: object, owner: str) -> None:
    plain = create_engine(str(engine.url.render_as_string(hide_password=False)))
    try:
        with plain.begin() as conn:
            conn.execute(text(
                "INSERT INTO activities (id, kind, subject, all_day, owner_id, created_at, sensitivity, extra)"
                " VALUES ('sql-1', 'call', 'Bellen', false, (SELECT id FROM users), :now, NULL, NULL)"),
                {"now": _stamp(engine)})
    finally:
        plain.dispose()
    with Session(engine) as session:  # type: ignore[arg-type]
        stored = repository.get_activity(session, "sql-1")
    assert stored is not None and (stored.sensitivity, stored.show_as, stored.extra, stored.attachments) == (
        None, None, {}, ())
    assert stored.timezone_definition is None


def test_categories_a_crm_wrote_as_one_string_are_that_rows_error_not_letters(engine: Engine, owner: str) -> None:
    cast = "CAST(:c AS jsonb)" if engine.dialect.name == "postgresql" else ":c"
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO activities (id, kind, subject, all_day, owner_id, created_at, categories)"
            f" VALUES ('sql-2', 'call', 'Bellen', false, (SELECT id FROM users), :now, {cast})"),
            {"now": _stamp(engine), "c": '"VIP,Klant"'})
    with Session(engine) as session, pytest.raises(ValidationError, match='activity "sql-2": stored categories'):
        repository.get_activity(session, "sql-2")
