"""The JSON Lines exchange format: every field both ways, and an error naming line and field for each
kind of bad input."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.activity_json import (
    FIELDS,
    InvalidActivities,
    activity_from_json,
    activity_to_json,
    read_jsonl,
    write_jsonl,
)
from syncd.errors import ValidationError
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

CET = timezone(timedelta(hours=1))
#: Any text the store can keep: all but NUL (PostgreSQL refuses it) and lone surrogates (not text).
TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def rich() -> Activity:
    return Activity(
        id="ACT-1",
        kind=Kind.APPOINTMENT,
        subject="פגישת מכירות שבועית",
        owner="anna@example.com",
        description="Wekelijks overleg — Żółć\nregel twee",
        start=datetime(2026, 3, 2, 9, tzinfo=CET),
        end=datetime(2026, 3, 2, 10, tzinfo=CET),
        timezone="Europe/Amsterdam",
        status="planned",
        type="sales meeting",
        priority="normal",
        direction=Direction.OUTBOUND,
        location="Zaal 2",
        place="Keizersgracht 1",
        project="Uitrol",
        reminder_minutes=15,
        recurrence=Recurrence(
            "FREQ=WEEKLY;BYDAY=MO",
            (datetime(2026, 3, 9, 9, tzinfo=CET),),
            (Override(datetime(2026, 3, 16, 9, tzinfo=CET), datetime(2026, 3, 16, 11, tzinfo=CET), None, "Later"),),
        ),
        participants=(
            Participant(ParticipantKind.USER, "bart@example.com", "Bart", Role.OPTIONAL, Response.ACCEPTED),
            Participant(ParticipantKind.EXTERNAL, None, "Tolk"),
        ),
        regarding=(Regarding(RegardingKind.ACCOUNT, "ACC-1", "Żółć B.V."),),
        parent_id="ACT-0",
        close_reason="te duur",
        updated_at=datetime(2026, 3, 1, 12, tzinfo=UTC),
    )


def line(**fields: object) -> str:
    base: dict[str, object] = {"id": "A", "kind": "call", "owner": "anna@example.com"}
    return json.dumps({**base, **fields}, ensure_ascii=False)


def errors(text: str) -> list[str]:
    with pytest.raises(InvalidActivities) as caught:
        read_jsonl(text)
    return list(caught.value.messages)


class TestExport:
    def test_every_field_is_written_in_order(self) -> None:
        assert tuple(activity_to_json(rich())) == FIELDS

    def test_times_are_shown_in_the_activity_timezone(self) -> None:
        """March in Amsterdam is +01:00, May is +02:00; updated_at too."""
        a = rich().replace(start=datetime(2026, 5, 4, 7, tzinfo=UTC), end=datetime(2026, 5, 4, 8, tzinfo=UTC))
        data = activity_to_json(a)
        assert (data["start"], data["updated_at"]) == ("2026-05-04T09:00:00+02:00", "2026-03-01T13:00:00+01:00")
        assert data["recurrence"]["exdates"] == ["2026-03-09T09:00:00+01:00"]

    def test_utc_without_a_timezone(self) -> None:
        data = activity_to_json(rich().replace(timezone=None))
        assert data["start"] == "2026-03-02T08:00:00+00:00"

    def test_all_day_values_are_dates(self) -> None:
        a = Activity("D", Kind.APPOINTMENT, "Vrij", "anna@example.com", start=date(2026, 4, 27),
                     end=date(2026, 4, 28), all_day=True)
        assert (activity_to_json(a)["start"], activity_to_json(a)["end"]) == ("2026-04-27", "2026-04-28")

    def test_non_ascii_is_written_as_is(self) -> None:
        stream = io.StringIO()
        write_jsonl([rich()], stream)
        assert "פגישת מכירות שבועית" in stream.getvalue() and "\\u" not in stream.getvalue()


class TestRoundTrip:
    def test_rich_activity(self) -> None:
        stream = io.StringIO()
        write_jsonl([rich()], stream)
        assert read_jsonl(stream.getvalue()) == [rich()]

    def test_defaults_for_missing_fields(self) -> None:
        a = activity_from_json({"id": "T", "kind": "task", "owner": "anna@example.com"})
        assert a == Activity("T", Kind.TASK, "", "anna@example.com")

    @given(st.text(TEXT), st.text(TEXT), st.lists(st.text(TEXT, min_size=1).filter(str.strip), max_size=3))
    def test_any_text_survives(self, subject: str, description: str, names: list[str]) -> None:
        """Including line separators (U+2028, U+0085) that must not split a line."""
        a = Activity("X", Kind.CALL, subject, "o@example.com", description=description,
                     participants=tuple(Participant(ParticipantKind.EXTERNAL, None, n) for n in names))
        stream = io.StringIO()
        write_jsonl([a, a.replace(id="Y")], stream)
        assert read_jsonl(stream.getvalue()) == [a, a.replace(id="Y")]


class TestErrors:
    def test_bad_json(self) -> None:
        assert errors(line() + "\n{oops\n") == ["line 2: not valid JSON: Expecting property name enclosed in double quotes (column 2)"]

    def test_not_an_object(self) -> None:
        assert errors("[1, 2]") == ['line 1: must be a JSON object, not [1, 2]']

    def test_unknown_kind(self) -> None:
        assert errors(line(kind="meeting")) == [
            'line 1: field "kind": must be one of appointment|call|task|mailing|email, not "meeting"'
        ]

    def test_end_before_start(self) -> None:
        text = "\n\n" + line(start="2026-03-02T10:00:00+01:00", end="2026-03-02T09:00:00+01:00")
        assert errors(text) == ['line 3: field "end": is before "start"']

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"all_day": "yes"}, 'field "all_day": must be true or false, not "yes"'),
            ({"reminder_minutes": "15"}, 'field "reminder_minutes": must be a whole number of minutes, not "15"'),
            ({"reminder_minutes": True}, 'field "reminder_minutes": must be a whole number of minutes, not true'),
            ({"subject": 42}, 'field "subject": must be a string, not 42'),
            ({"participants": {"kind": "user"}}, 'field "participants": must be a list, not {"kind": "user"}'),
            ({"start": "2026-03-02T10:00:00"}, 'field "start": needs a UTC offset (for example +02:00 or Z): "2026-03-02T10:00:00"'),
            ({"start": "next monday"}, 'field "start": is not an ISO 8601 date or date-time: "next monday"'),
            ({"start": "2026-03-02"}, 'field "start": must be a date and time with a UTC offset because all_day is false'),
            ({"all_day": True, "start": "2026-03-02T10:00:00Z"}, 'field "start": must be a date (YYYY-MM-DD) because all_day is true'),
            ({"timezone": "Mars/Olympus"}, 'field "timezone": is not an IANA time zone name (such as Europe/Amsterdam): "Mars/Olympus"'),
            ({"direction": "sideways"}, 'field "direction": must be one of inbound|outbound, not "sideways"'),
            ({"subjct": "x"}, 'field "subjct": unknown field (did you mean "subject"?)'),
            ({"owner": None}, 'field "owner": is required'),
            ({"participants": [{"kind": "robot", "email": "r@x"}]}, 'field "participants[0].kind": must be one of user|contact|account|external|resource|group, not "robot"'),
            ({"participants": [{"kind": "user", "name": "Bart"}]}, 'field "participants[0].email": is required for a participant of kind user'),
            ({"regarding": [{"kind": "deal", "id": "1"}]}, 'field "regarding[0].kind": must be one of'),
            ({"start": "2026-03-02T10:00:00Z", "recurrence": {"rrule": "FREQ=WEEKLY;BYDAY=XX"}}, 'field "recurrence.rrule": is not a valid RFC 5545 RRULE: invalid \'BYDAY\': XX'),
            ({"start": "2026-03-02T10:00:00Z", "recurrence": {"rrule": "BYDAY=MO"}}, 'field "recurrence.rrule": needs FREQ'),
            ({"start": "2026-03-02T10:00:00Z", "recurrence": {"rrule": "FREQ=DAILY;COUNT=2;UNTIL=20260310T000000Z"}}, 'field "recurrence.rrule": must not have both COUNT and UNTIL (RFC 5545)'),
            ({"start": "2026-03-02T10:00:00Z", "recurrence": {"rrule": "FREQ=DAILY;UNTIL=20260310T000000"}}, 'field "recurrence.rrule": is not a valid RFC 5545 RRULE: RRULE UNTIL values must be specified in UTC'),
            ({"recurrence": {"rrule": "FREQ=DAILY"}}, 'field "recurrence": needs "start" (the first occurrence)'),
            ({"all_day": True, "start": "2026-03-02", "recurrence": {"rrule": "FREQ=DAILY", "exdates": ["2026-03-03T00:00:00Z"]}}, 'field "recurrence.exdates[0]": must be a date (YYYY-MM-DD)'),
            ({"start": "2026-03-02T10:00:00Z", "recurrence": {"rrule": "FREQ=DAILY", "overrides": [{"start": "2026-03-03T11:00:00Z"}]}}, 'field "recurrence.overrides[0].recurrence_id": is required'),
        ],
    )
    def test_wrong_field(self, fields: dict, message: str) -> None:
        [found] = errors(line(**fields))
        assert found.startswith(f"line 1: {message}")

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"subject": "a\u0000b"}, 'field "subject": must not contain a NUL character (U+0000)'),
            ({"description": "\ud800"}, 'field "description": is not valid Unicode text (it holds a lone surrogate)'),
            ({"id": "x" * 256}, 'field "id": is longer than 255 characters'),
            ({"participants": [{"kind": "external"}]}, 'field "participants[0]": needs an "email" or a "name"'),
            ({"participants": [{"kind": "external", "name": " "}]}, 'field "participants[0]": needs an "email" or a "name"'),
            ({"participants": [{"kind": "contact", "email": " jan@klant.nl"}]}, 'field "participants[0].email": must not start or end with white space'),
            ({"participants": [{"kind": "contact", "email": "jan@klant.nl\nBcc: x"}]}, 'field "participants[0].email": must not contain control characters'),
            ({"regarding": [{"kind": "account", "id": " "}]}, 'field "regarding[0].id": must not be empty'),
            ({"reminder_minutes": 2**31}, 'field "reminder_minutes": must be between -2147483647 and 2147483647'),
            ({"completed_at": "0001-01-01T00:00:00+09:00"}, 'field "completed_at": is outside the years 1 to 9999 in UTC'),
            ({"start": "2026-03-02T10:00:00Z", "recurrence": {"rrule": "FREQ=DAILY", "overrides": [
                {"recurrence_id": "2026-03-03T10:00:00Z", "start": "2026-03-03T11:00:00Z", "end": "2026-03-03T10:30:00Z"}]}},
             'field "recurrence.overrides[0].end": is before "recurrence.overrides[0].start"'),
        ],
    )
    def test_what_the_store_cannot_keep(self, fields: dict, message: str) -> None:
        """The rules every path shares (syncd.store.rules), named by line and field here."""
        [found] = errors(line(**fields))
        assert found.startswith(f"line 1: {message}")

    def test_an_empty_email_is_no_email(self) -> None:
        [a] = read_jsonl(line(participants=[{"kind": "contact", "email": "", "name": "Jan"}]))
        assert a.participants == (Participant(ParticipantKind.CONTACT, None, "Jan"),)

    def test_every_problem_of_every_line(self) -> None:
        text = "\n".join([line(all_day="yes", colour="red"), "nope", line(id="B"), line(id="B")])
        assert errors(text) == [
            'line 1: field "colour": unknown field',
            'line 1: field "all_day": must be true or false, not "yes"',
            "line 2: not valid JSON: Expecting value (column 1)",
            'line 4: field "id": "B" is already on line 3',
        ]

    def test_without_a_line_the_id_is_named(self) -> None:
        with pytest.raises(ValidationError, match='^activity "A": field "end": is before "start"$'):
            activity_from_json(json.loads(line(start="2026-03-02T10:00:00Z", end="2026-03-02T09:00:00Z")))
