"""The content hash never raises, whatever an activity holds, and says "same" exactly when nothing
meaningful changed."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import arbitrary_activities, messy_activities

from syncd.activity_json import read_jsonl
from syncd.mapping.fingerprint import canonical, changed_fields, fingerprint
from syncd.model import (
    CONTENT_FIELDS,
    Activity,
    Kind,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
    Regarding,
    RegardingKind,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "activities.jsonl"


def _shuffled(a: Activity) -> Activity:
    """The same content in another order: lists the fingerprint reads as sets."""
    rec = a.recurrence
    if rec is not None:
        rec = dataclasses.replace(rec, exdates=tuple(reversed(rec.exdates)), overrides=tuple(reversed(rec.overrides)),
                                  rdates=tuple(reversed(rec.rdates)))
    return a.replace(participants=tuple(reversed(a.participants)), regarding=tuple(reversed(a.regarding)), recurrence=rec)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(arbitrary_activities(), messy_activities()), st.one_of(arbitrary_activities(), messy_activities()))
def test_never_raises_and_agrees_with_changed_fields(a: Activity, b: Activity) -> None:
    data = canonical(a)
    json.dumps(data)  # plain JSON data
    assert len(fingerprint(a)) == 32
    assert changed_fields(a, a) == []
    assert fingerprint(_shuffled(a)) == fingerprint(a)
    changed = changed_fields(a, b)
    assert set(changed) <= set(CONTENT_FIELDS)
    assert (changed == []) == (fingerprint(a) == fingerprint(b))


def test_the_readme_example_has_a_fingerprint() -> None:
    """ACT-1005 has an external participant with an e-mail and one without: the pass used to stop."""
    for activity in read_jsonl(EXAMPLES.read_text(encoding="utf-8")):
        assert len(fingerprint(activity)) == 32


def test_none_beside_text_in_every_list() -> None:
    a = Activity(
        "A", Kind.APPOINTMENT, "s", "o@example.com", start=datetime(2026, 3, 2, 9, tzinfo=UTC),
        participants=(Participant(ParticipantKind.EXTERNAL, "x@example.com", "X"), Participant(ParticipantKind.EXTERNAL, None, "X"),
                      Participant(ParticipantKind.EXTERNAL, "x@example.com", None)),
        regarding=(Regarding(RegardingKind.ACCOUNT, "1", "Name"), Regarding(RegardingKind.ACCOUNT, "1", None)),
        recurrence=Recurrence("FREQ=DAILY", (), (
            Override(datetime(2026, 3, 3, 9, tzinfo=UTC), subject="moved"),
            Override(datetime(2026, 3, 3, 9, tzinfo=UTC), start=datetime(2026, 3, 3, 10, tzinfo=UTC)),
            Override(date(2026, 3, 3)),
        )),
    )
    assert fingerprint(a) == fingerprint(_shuffled(a))
    assert changed_fields(a, a.replace(participants=a.participants[:2])) == ["participants"]


def test_values_at_the_ends_of_the_calendar() -> None:
    """An all-day day 9999-12-31 has no exclusive next day; year 1 in a zone east of UTC is year 0 in UTC."""
    from zoneinfo import ZoneInfo

    last = Activity("A", Kind.APPOINTMENT, "s", "o@example.com", all_day=True, start=date(9999, 12, 31), end=date(9999, 12, 31))
    first = last.replace(all_day=False, start=datetime(1, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo")), end=None)
    assert fingerprint(last) != fingerprint(first)
    assert changed_fields(first, first.replace(start=datetime(1, 1, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo")))) == ["start"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arbitrary_activities(), arbitrary_activities(), st.sets(st.sampled_from(CONTENT_FIELDS)))
def test_a_fingerprint_of_some_fields_is_the_same_after_one_of_all(a: Activity, b: Activity, some: set[str]) -> None:
    """A link records both (all fields, and those the calendar holds) of one activity in a row."""
    fields = sorted(some)
    fingerprint(b, fields)
    alone = fingerprint(a, fields)  # the first of a: nothing of it known yet
    again = dataclasses.replace(a)
    assert fingerprint(again) == fingerprint(a)
    assert fingerprint(again, fields) == alone
    assert fingerprint(again, fields) == alone
    assert fingerprint(b, fields) != alone or changed_fields(a, b, fields) == []
