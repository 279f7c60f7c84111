"""One occurrence of a timed series made all-day, through the exchange format and the store (SQLite and
PostgreSQL): its start and end are dates (``YYYY-MM-DD``, the end exclusive) while the series' times and
the occurrence's RECURRENCE-ID stay date-times; an import keeps it, the store and an export give it back,
and what cannot be such an occurrence is refused naming the field. The same for the reverse, one
occurrence of an all-day series given its own times (date-times with an offset, its recurrence_id a date)."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar
from sqlalchemy.orm import Session

from syncd.activity_json import InvalidActivities, activity_from_json
from syncd.mapping.context import MappingContext
from syncd.mapping.fingerprint import fingerprint
from syncd.mapping.ical import to_ical
from syncd.mapping.occurrences import occurrences
from syncd.model import Activity, CrmUser
from syncd.store import repository
from syncd.store.importer import export_activities, import_jsonl

AMS = ZoneInfo("Europe/Amsterdam")
CTX = MappingContext(owner=CrmUser("anna@example.com", "Anna de Vries", "Europe/Amsterdam"))
MARCH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))

STANDUP = {
    "id": "CRM-7", "kind": "appointment", "subject": "Stand-up", "owner": "anna@example.com",
    "start": "2026-03-02T09:00:00+01:00", "end": "2026-03-02T09:15:00+01:00", "timezone": "Europe/Amsterdam",
    "recurrence": {
        "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=6",
        "overrides": [
            # The team offsite replaces the 16 March stand-up with two whole days.
            {"recurrence_id": "2026-03-16T09:00:00+01:00", "start": "2026-03-16", "end": "2026-03-18",
             "subject": "Offsite"},
            # No end: one day.
            {"recurrence_id": "2026-03-23T09:00:00+01:00", "start": "2026-03-23"},
        ],
    },
}


def through_the_store(session: Session, source: dict[str, Any]) -> tuple[Activity, list[dict[str, Any]], Activity]:
    """Imports ``source``: the store keeps the very activity, its export imports again unchanged, and saved
    again it reads with the same content. Gives what the store kept, the exported overrides, and what it
    read after saving it again."""
    assert import_jsonl(session, json.dumps(source) + "\n").created == (source["id"],)
    session.commit()
    kept = repository.get_activity(session, source["id"])
    assert kept is not None and kept.recurrence is not None
    assert kept == activity_from_json(source).replace(updated_at=kept.updated_at, created_at=kept.created_at)

    stream = io.StringIO()
    export_activities(session, stream)
    [line] = stream.getvalue().splitlines()
    assert import_jsonl(session, stream.getvalue()).unchanged == (source["id"],)

    # Saved again, read again: the same content (the engine's fingerprint sees no change).
    repository.save_activity(session, kept)
    session.commit()
    again = repository.get_activity(session, source["id"])
    assert again is not None and fingerprint(again) == fingerprint(kept)
    return kept, json.loads(line)["recurrence"]["overrides"], again


def with_override(series: dict[str, Any], **fields: object) -> dict[str, Any]:
    """The series with one override of these fields, for its first override's occurrence unless they name one."""
    override = {"recurrence_id": series["recurrence"]["overrides"][0]["recurrence_id"], **fields}
    return {**series, "recurrence": {**series["recurrence"], "overrides": [override]}}


def test_an_all_day_occurrence_is_imported_stored_and_exported_as_it_was(session: Session, owner: str) -> None:
    kept, exported, _ = through_the_store(session, STANDUP)
    assert kept.recurrence is not None
    offsite, one_day = kept.recurrence.overrides
    assert (offsite.start, offsite.end, offsite.subject) == (date(2026, 3, 16), date(2026, 3, 18), "Offsite")
    assert (one_day.start, one_day.end) == (date(2026, 3, 23), None)
    assert offsite.recurrence_id == datetime(2026, 3, 16, 9, tzinfo=AMS)
    assert [(o["start"], o["end"]) for o in exported] == [("2026-03-16", "2026-03-18"), ("2026-03-23", None)]


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"start": "2026-03-16", "end": "2026-03-16T17:00:00+01:00"}, "end",
         "must be a date (YYYY-MM-DD) because this occurrence's \"start\" is one (all day)"),
        ({"start": "2026-03-16", "end": "2026-03-15"}, "end", 'is before "recurrence.overrides[0].start"'),
        ({"end": "2026-03-17"}, "end", "must be a date and time with a UTC offset because all_day is false"),
        ({"recurrence_id": "2026-03-16", "start": "2026-03-16"}, "recurrence_id",
         "must be a date and time with a UTC offset because all_day is false"),
        ({"start": "2026-03-16", "this_and_future": True}, "this_and_future",
         "must be false for an occurrence whose start is not of its series' kind (all-day or timed): RFC 5545 "
         "leaves open what that makes of the later occurrences"),
    ],
    ids=["timed-end", "end-before-start", "date-end-alone", "date-recurrence-id", "range"],
)
def test_what_cannot_be_an_all_day_occurrence_is_refused_naming_the_field(
    session: Session, owner: str, override: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(InvalidActivities) as caught:
        import_jsonl(session, json.dumps(with_override(STANDUP, **override)) + "\n")
    assert f'line 1: field "recurrence.overrides[0].{field}": {message}' in str(caught.value)
    assert repository.get_activity(session, "CRM-7") is None


# -- the reverse: one occurrence of an all-day series given its own times --------------------------------

ROTA = {
    "id": "CRM-8", "kind": "appointment", "subject": "On call", "owner": "anna@example.com",
    "start": "2026-03-02", "end": "2026-03-03", "all_day": True,
    "recurrence": {
        "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=6",
        "overrides": [
            # The 16 March day on call becomes a two-hour handover that afternoon.
            {"recurrence_id": "2026-03-16", "start": "2026-03-16T14:00:00+01:00",
             "end": "2026-03-16T16:00:00+01:00", "subject": "Handover"},
            # No end: an instant, as a DTSTART alone is.
            {"recurrence_id": "2026-03-23", "start": "2026-03-23T09:30:00Z"},
        ],
    },
}


def test_a_timed_occurrence_of_an_all_day_series_is_imported_stored_and_exported_as_it_was(
    session: Session, owner: str
) -> None:
    kept, exported, again = through_the_store(session, ROTA)
    assert kept.all_day and kept.recurrence is not None
    handover, instant = kept.recurrence.overrides
    assert handover.recurrence_id == date(2026, 3, 16)
    assert (handover.start, handover.end, handover.subject) == (
        datetime(2026, 3, 16, 14, tzinfo=AMS), datetime(2026, 3, 16, 16, tzinfo=AMS), "Handover"
    )
    assert (instant.start, instant.end) == (datetime(2026, 3, 23, 9, 30, tzinfo=UTC), None)
    # The same instants (an all-day series without a zone shows its times in UTC).
    assert [(o["recurrence_id"], o["start"], o["end"]) for o in exported] == [
        ("2026-03-16", "2026-03-16T13:00:00+00:00", "2026-03-16T15:00:00+00:00"),
        ("2026-03-23", "2026-03-23T09:30:00+00:00", None),
    ]

    # What a calendar then shows: the handover at its hours, the instant, the other Mondays whole days.
    calendar = Calendar.from_ical(to_ical(again, CTX))
    shown = {(e["DTSTART"].dt, e["DTEND"].dt) for e in recurring_ical_events.of(calendar).between(*MARCH)}
    assert (datetime(2026, 3, 16, 13, tzinfo=UTC), datetime(2026, 3, 16, 15, tzinfo=UTC)) in shown
    assert (datetime(2026, 3, 23, 9, 30, tzinfo=UTC), datetime(2026, 3, 23, 9, 30, tzinfo=UTC)) in shown
    assert (date(2026, 3, 9), date(2026, 3, 10)) in shown and len(shown) == 5
    assert sorted(shown, key=lambda o: str(o[0])) == [tuple(o) for o in occurrences(again, *MARCH)]


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"start": "2026-03-16T14:00:00+01:00", "end": "2026-03-17"}, "end",
         "must be a date and time with a UTC offset because this occurrence's \"start\" is one (an occurrence of "
         "an all-day series given its own times)"),
        # Later on the wall clock, earlier as an instant: ends before it starts.
        ({"start": "2026-03-16T14:00:00Z", "end": "2026-03-16T15:00:00+02:00"}, "end",
         'is before "recurrence.overrides[0].start"'),
        ({"end": "2026-03-16T15:00:00+01:00"}, "end", "must be a date (YYYY-MM-DD) because all_day is true"),
        ({"recurrence_id": "2026-03-16T00:00:00+01:00", "start": "2026-03-16T14:00:00+01:00"}, "recurrence_id",
         "must be a date (YYYY-MM-DD) because all_day is true"),
        ({"start": "2026-03-16T14:00:00"}, "start",
         'needs a UTC offset (for example +02:00 or Z): "2026-03-16T14:00:00"'),
        # Of this and every later occurrence RFC 5545 does not say what times the later ones take.
        ({"start": "2026-03-16T14:00:00+01:00", "this_and_future": True}, "this_and_future",
         "must be false for an occurrence whose start is not of its series' kind (all-day or timed): RFC 5545 "
         "leaves open what that makes of the later occurrences"),
    ],
    ids=["date-end", "end-before-start-as-instants", "time-end-alone", "timed-recurrence-id", "no-offset", "range"],
)
def test_what_cannot_be_a_timed_occurrence_of_an_all_day_series_is_refused_naming_the_field(
    override: dict[str, str], field: str, message: str
) -> None:
    # The format's check, which an import runs on every line before it stores any (shown above).
    with pytest.raises(InvalidActivities) as caught:
        activity_from_json(with_override(ROTA, **override))
    assert caught.value.messages == (f'activity "CRM-8": field "recurrence.overrides[0].{field}": {message}',)


def test_an_end_later_as_an_instant_is_kept_though_earlier_on_the_wall_clock() -> None:
    kept = activity_from_json(with_override(ROTA, start="2026-03-16T14:00:00+02:00", end="2026-03-16T13:30:00+00:00"))
    assert kept.recurrence is not None
    [override] = kept.recurrence.overrides
    assert override.end == datetime(2026, 3, 16, 13, 30, tzinfo=UTC)
