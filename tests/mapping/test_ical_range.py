"""RECURRENCE-ID;RANGE=THISANDFUTURE: a change to one occurrence and every later one (RFC 5545 3.8.4.4).

The CRM keeps it as an override per later occurrence, or, for a series without end (or with more later
occurrences than syncd carries), as the range override itself (``Override.this_and_future``). Asserted: the
occurrences (start, end, title) syncd holds and those a CalDAV client (recurring-ical-events) shows of the
source, of syncd's written copy and of that copy after the CRM's store are the same; what Exchange and
Graph cannot hold (a kept range) is refused for them with its reason, never shown with the old values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar

from syncd.activity_json import activity_from_json, activity_to_json
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import to_ews
from syncd.mapping.fingerprint import fingerprint
from syncd.mapping.graph import event_to_graph
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.ical_range import MAX_CARRIED
from syncd.mapping.occurrences import has_occurrence, occurrences
from syncd.mapping.outlook_recurrence import UnsupportedRecurrence
from syncd.model import Activity, CrmUser, Override
from syncd.store import repository
from syncd.store.db import make_engine, session_factory, upgrade

OWNER = CrmUser("owner@example.com", "Owner", "Europe/Amsterdam")
CTX = MappingContext(owner=OWNER)
AMS = ZoneInfo("Europe/Amsterdam")
WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
TWO_YEARS = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
CORPUS = Path(__file__).parent.parent / "data" / "ics" / "corpus"

# A weekly meeting on Mondays at 9:00 in Amsterdam, six weeks over the spring DST change (29 March).
SERIES = """BEGIN:VEVENT
UID:weekly
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Amsterdam:20260309T090000
DTEND;TZID=Europe/Amsterdam:20260309T100000
RRULE:FREQ=WEEKLY;{bound}
SUMMARY:Sales meeting
LOCATION:Room 1
END:VEVENT
"""


def calendar(*components: str) -> bytes:
    text = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n" + "".join(components) + "END:VCALENDAR\n"
    return text.replace("\n", "\r\n").encode()


def change(rid: str, body: str, *, future: bool = True) -> str:
    rng = ";RANGE=THISANDFUTURE" if future else ""
    return (
        f"BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID{rng};TZID=Europe/Amsterdam:{rid}\n"
        f"{body}\nEND:VEVENT\n"
    )


Shown = list[tuple[Any, Any, str]]


def shown(data: bytes, window: tuple[datetime, datetime] = WINDOW) -> Shown:
    """What a CalDAV client shows: (start, end, title) of each occurrence, as UTC instants."""
    found = recurring_ical_events.of(Calendar.from_ical(data)).between(*window)
    return sorted((_utc(e["DTSTART"].dt), _utc(e["DTEND"].dt), str(e.get("SUMMARY", ""))) for e in found)


def held(activity: Activity, window: tuple[datetime, datetime] = WINDOW) -> Shown:
    """What syncd holds: its own expansion, with the title each occurrence has (its own override's, else
    the latest kept range's at or before it, else the series')."""
    assert activity.recurrence is not None
    overrides = activity.recurrence.overrides
    titles = {_utc(o.start or o.recurrence_id): o.subject for o in overrides if not o.this_and_future}
    ranges = sorted((_utc(o.start or o.recurrence_id), o.subject) for o in overrides if o.this_and_future)

    def title(start: Any) -> str:
        if start in titles:
            return titles[start] or activity.subject
        return next((t for at, t in reversed(ranges) if at <= start), None) or activity.subject

    return sorted((_utc(s), _utc(e), title(_utc(s))) for s, e in occurrences(activity, *window))


def _utc(moment: Any) -> Any:
    return moment.astimezone(UTC) if isinstance(moment, datetime) else moment


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('range') / 'crm.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as db:
        repository.add_user(db, OWNER)
        db.commit()
        yield db
    engine.dispose()


def through_the_crm(
    data: bytes, session: Any, window: tuple[datetime, datetime] = WINDOW
) -> tuple[Activity, bytes]:
    """Read from a calendar, kept in the CRM's store, written to a second, empty calendar; asserts that all
    four show the same occurrences and that the copy reads back as the CRM holds it."""
    activity = from_ical(data, CTX, "item").activity
    repository.save_activity(session, activity)
    session.commit()
    kept = repository.get_activity(session, activity.id)
    assert kept is not None
    second = to_ical(kept, CTX)
    assert shown(second, window) == shown(data, window)
    assert held(activity, window) == held(kept, window) == shown(data, window)
    assert from_ical(second, CTX, "second").activity.recurrence == kept.recurrence
    return kept, second


def at(day: int, hour: int, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=AMS).astimezone(UTC)


@pytest.mark.parametrize("bound", ["COUNT=6", "UNTIL=20260413T080000Z"])
def test_a_move_from_the_third_occurrence_on_moves_every_later_one(bound: str, session: Any) -> None:
    data = calendar(
        SERIES.format(bound=bound),
        change("20260323T090000", "DTSTART;TZID=Europe/Amsterdam:20260323T100000\n"
               "DTEND;TZID=Europe/Amsterdam:20260323T110000\nSUMMARY:Sales meeting\nLOCATION:Room 1"),
    )
    kept, _ = through_the_crm(data, session)
    # 10:00 on the wall clock after the DST change too, as the user moved it.
    assert [start for start, _, _ in held(kept)] == [
        at(9, 9), at(16, 9), at(23, 10), at(30, 10), at(6, 10, month=4), at(13, 10, month=4),
    ]


def test_a_new_title_from_the_third_on_with_a_later_single_change_on_top(session: Any) -> None:
    data = calendar(
        SERIES.format(bound="COUNT=6"),
        change("20260323T090000", "DTSTART;TZID=Europe/Amsterdam:20260323T090000\n"
               "DTEND;TZID=Europe/Amsterdam:20260323T100000\nSUMMARY:Pipeline review\nLOCATION:Room 2"),
        change("20260406T090000", "DTSTART;TZID=Europe/Amsterdam:20260406T140000\n"
               "DTEND;TZID=Europe/Amsterdam:20260406T150000\nSUMMARY:Pipeline review (Easter)", future=False),
    )
    kept, second = through_the_crm(data, session)
    assert [(start, title) for start, _, title in held(kept)] == [
        (at(9, 9), "Sales meeting"), (at(16, 9), "Sales meeting"), (at(23, 9), "Pipeline review"),
        (at(30, 9), "Pipeline review"), (at(6, 14, month=4), "Pipeline review (Easter)"),
        (at(13, 9, month=4), "Pipeline review"),
    ]
    assert kept.recurrence is not None
    locations = {o.recurrence_id: o.location for o in kept.recurrence.overrides}
    # The single change names no place: its component is the whole occurrence, which then has none.
    assert locations == {
        datetime(2026, 3, 23, 9, tzinfo=AMS): "Room 2", datetime(2026, 3, 30, 9, tzinfo=AMS): "Room 2",
        datetime(2026, 4, 6, 9, tzinfo=AMS): "", datetime(2026, 4, 13, 9, tzinfo=AMS): "Room 2",
    }
    assert b"THISANDFUTURE" not in second  # each occurrence is written as its own override


MOVED_TO_TEN = (
    "DTSTART;TZID=Europe/Amsterdam:20260323T100000\nDTEND;TZID=Europe/Amsterdam:20260323T110000\n"
    "SUMMARY:Pipeline review\nLOCATION:Room 1"
)


def test_an_endless_series_moved_from_the_third_occurrence_on_keeps_the_range(session: Any) -> None:
    """No last occurrence to carry the change to: the CRM keeps the range itself, and over two years every
    occurrence is the one the phone showed, 10:00 on the wall clock across both DST changes."""
    data = calendar(SERIES.format(bound="INTERVAL=1"), change("20260323T090000", MOVED_TO_TEN))
    kept, second = through_the_crm(data, session, TWO_YEARS)
    assert kept.recurrence is not None
    assert kept.recurrence.overrides == (
        Override(datetime(2026, 3, 23, 9, tzinfo=AMS), start=datetime(2026, 3, 23, 10, tzinfo=AMS),
                 subject="Pipeline review", this_and_future=True),
    )
    assert b"RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Amsterdam:20260323T090000" in second
    occurrences_held = held(kept, TWO_YEARS)
    assert len(occurrences_held) == 43 + 52  # every Monday from 9 March 2026 to the end of 2027
    assert occurrences_held[:3] == [
        (at(9, 9), at(9, 10), "Sales meeting"), (at(16, 9), at(16, 10), "Sales meeting"),
        (at(23, 10), at(23, 11), "Pipeline review"),
    ]
    late = datetime(2027, 11, 1, 10, tzinfo=AMS).astimezone(UTC)  # after the autumn change of 2027
    assert (late, late + timedelta(hours=1), "Pipeline review") in occurrences_held
    # The CRM's own format and its fingerprint carry the range: a range is not the same as one occurrence.
    exported = activity_to_json(kept)
    assert exported["recurrence"]["overrides"][0]["this_and_future"] is True
    assert activity_from_json(exported).recurrence == kept.recurrence
    single = replace(kept.recurrence.overrides[0], this_and_future=False)
    assert fingerprint(kept) != fingerprint(kept.replace(recurrence=replace(kept.recurrence, overrides=(single,))))


def test_a_later_single_change_wins_over_a_kept_range_and_a_later_range_ends_it(session: Any) -> None:
    data = calendar(
        SERIES.format(bound="INTERVAL=1"),
        change("20260323T090000", MOVED_TO_TEN),
        change("20260406T090000", "DTSTART;TZID=Europe/Amsterdam:20260406T140000\n"
               "DTEND;TZID=Europe/Amsterdam:20260406T150000\nSUMMARY:Pipeline review (Easter)", future=False),
        change("20260601T090000", "DTSTART;TZID=Europe/Amsterdam:20260601T090000\n"
               "DTEND;TZID=Europe/Amsterdam:20260601T100000\nSUMMARY:Sales meeting\nLOCATION:Room 1"),
    )
    kept, _ = through_the_crm(data, session, TWO_YEARS)
    starts = {start: title for start, _, title in held(kept, TWO_YEARS)}
    assert starts[at(30, 10)] == "Pipeline review"
    assert starts[at(6, 14, month=4)] == "Pipeline review (Easter)"  # the single change wins for its day
    assert at(6, 10, month=4) not in starts
    assert starts[at(13, 10, month=4)] == starts[at(25, 10, month=5)] == "Pipeline review"
    assert starts[at(1, 9, month=6)] == starts[at(8, 9, month=6)] == "Sales meeting"  # the later range ends it
    assert datetime(2027, 6, 7, 9, tzinfo=AMS).astimezone(UTC) in starts


def test_an_endless_all_day_series_moved_a_day_from_the_second_occurrence_on(session: Any) -> None:
    data = calendar(
        "BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nDTSTART;VALUE=DATE:20260302\n"
        "RRULE:FREQ=WEEKLY\nSUMMARY:Stock count\nEND:VEVENT\n",
        "BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;RANGE=THISANDFUTURE;VALUE=DATE:20260309\n"
        "DTSTART;VALUE=DATE:20260310\nSUMMARY:Stock count\nEND:VEVENT\n",
    )
    kept, _ = through_the_crm(data, session, TWO_YEARS)
    days = [start for start, _, _ in held(kept, TWO_YEARS)]
    assert days[:3] == [date(2026, 3, 2), date(2026, 3, 10), date(2026, 3, 17)]
    assert days[-1] == date(2027, 12, 28) and all(d.weekday() == 1 for d in days[1:])


def test_exchange_and_graph_refuse_a_kept_range_with_its_reason_and_the_calendar_keeps_it() -> None:
    activity = from_ical(
        calendar(SERIES.format(bound="INTERVAL=1"), change("20260323T090000", MOVED_TO_TEN)), CTX, "item"
    ).activity
    for write in (lambda: to_ews(activity, CTX), lambda: event_to_graph(activity, CTX, invitations=False)):
        with pytest.raises(UnsupportedRecurrence) as refused:
            write()
        assert refused.value.item == activity.id
        assert "RANGE=THISANDFUTURE" in refused.value.message and "without end" in refused.value.message
    # The same change on a bounded series is one override per occurrence, which Exchange holds.
    bounded = from_ical(
        calendar(SERIES.format(bound="COUNT=6"), change("20260323T090000", MOVED_TO_TEN)), CTX, "item"
    ).activity
    assert to_ews(bounded, CTX).recurrence is not None
    assert event_to_graph(bounded, CTX, invitations=False)["recurrence"] is not None


def test_a_range_that_changes_nothing_of_an_endless_series_is_read(session: Any) -> None:
    """Nothing to carry: the occurrence and those after it are the series' own."""
    data = calendar(
        SERIES.format(bound="INTERVAL=1"),
        change("20260323T090000", "DTSTART;TZID=Europe/Amsterdam:20260323T090000\n"
               "DTEND;TZID=Europe/Amsterdam:20260323T100000\nSUMMARY:Sales meeting\nLOCATION:Room 1"),
    )
    kept, _ = through_the_crm(data, session)
    assert kept.recurrence is not None and kept.recurrence.rrule == "FREQ=WEEKLY;INTERVAL=1"


def test_more_later_occurrences_than_syncd_carries_keeps_the_range(session: Any) -> None:
    data = calendar(
        SERIES.format(bound=f"COUNT={2 + 1 + MAX_CARRIED + 1}"),  # two before, the changed one, one too many
        change("20260323T090000", MOVED_TO_TEN),
    )
    kept, second = through_the_crm(data, session)
    assert kept.recurrence is not None and [o.this_and_future for o in kept.recurrence.overrides] == [True]
    assert second.count(b"RECURRENCE-ID") == 1


def test_an_all_day_series_moved_a_day_from_the_second_occurrence_on(session: Any) -> None:
    data = calendar(
        "BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nDTSTART;VALUE=DATE:20260302\n"
        "RRULE:FREQ=WEEKLY;UNTIL=20260323\nSUMMARY:Stock count\nEND:VEVENT\n",
        "BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;RANGE=THISANDFUTURE;VALUE=DATE:20260309\n"
        "DTSTART;VALUE=DATE:20260310\nSUMMARY:Stock count\nEND:VEVENT\n",
    )
    kept, _ = through_the_crm(data, session)
    assert [start for start, _, _ in held(kept)] == [date(2026, 3, 2), date(2026, 3, 10), date(2026, 3, 17),
                                                     date(2026, 3, 24)]


def test_two_ranges_an_rdate_and_a_single_change_as_recurring_ical_events_shows_them(session: Any) -> None:
    """recurring-ical-events' own test calendar for RANGE (its issue 75): a range moving -3 h and lasting
    7 h, an RDATE and a single change inside it, then a second range moving +1 day 2:22 h. Its DATE UNTIL
    on a timed series (which RFC 5545 forbids, and which the two read differently) is made a date-time."""
    source = (CORPUS / "recurring-ical-events" / "issue_75_range_parameter.ics").read_bytes()
    data = source.replace(b"UNTIL=20250920", b"UNTIL=20250920T000000Z")
    activity = from_ical(data, CTX, "item").activity
    window = (datetime(2024, 8, 1, tzinfo=UTC), datetime(2025, 10, 1, tzinfo=UTC))
    client = sorted(
        (_utc(e["DTSTART"].dt), _utc(e["DTEND"].dt))
        for e in recurring_ical_events.of(Calendar.from_ical(data)).between(*window)
    )
    assert sorted((_utc(s), _utc(e)) for s, e in occurrences(activity, *window)) == client
    written = to_ical(activity, CTX)
    assert sorted(
        (_utc(e["DTSTART"].dt), _utc(e["DTEND"].dt))
        for e in recurring_ical_events.of(Calendar.from_ical(written)).between(*window)
    ) == client
    moved = datetime(2024, 9, 17, 9, tzinfo=UTC), datetime(2024, 9, 17, 16, tzinfo=UTC)  # -3 h, 7 h long
    assert moved in client


MOVED_MEETING = (
    "BEGIN:VEVENT\r\nSUMMARY:Event moved\r\nDTSTART;TZID=America/Chicago:20180410T100000\r\n"
    "DTEND;TZID=America/Chicago:20180410T110000\r\nDTSTAMP:20180323T200333Z\r\nRECURRENCE-ID:20180410T130000Z\r\n"
    "END:VEVENT\r\n"
)


@pytest.mark.parametrize("moved", [False, True], ids=["alone", "with one meeting moved"])
def test_a_lone_range_with_its_rdates_and_no_series_keeps_every_rdate(moved: bool) -> None:
    """khal's (Lotus Notes') invitation to this and the later meetings: one component, its RDATEs the meetings;
    with a second occurrence without series beside it, the RDATEs are kept too."""
    data = (CORPUS / "icalendar" / "issue_156_RDATE_with_PERIOD_TZID_khal.ics").read_bytes()
    if moved:
        data = data.replace(b"END:VCALENDAR", MOVED_MEETING.encode() + b"END:VCALENDAR")
    activity = from_ical(data, CTX, "item").activity
    found = occurrences(activity, datetime(2018, 3, 1, tzinfo=UTC), datetime(2018, 9, 1, tzinfo=UTC))
    starts = [s.astimezone(UTC) for s, _ in found]  # type: ignore[union-attr]
    assert len(starts) == 19
    assert (datetime(2018, 4, 10, 15, tzinfo=UTC) in starts) is moved
    assert datetime(2018, 7, 31, 13, tzinfo=UTC) in starts


def test_a_later_range_back_to_the_series_ends_the_earlier_one(session: Any) -> None:
    data = calendar(
        SERIES.format(bound="COUNT=6"),
        change("20260323T090000", "DTSTART;TZID=Europe/Amsterdam:20260323T090000\n"
               "DTEND;TZID=Europe/Amsterdam:20260323T100000\nSUMMARY:Pipeline review\nLOCATION:Room 1"),
        change("20260406T090000", "DTSTART;TZID=Europe/Amsterdam:20260406T090000\n"
               "DTEND;TZID=Europe/Amsterdam:20260406T100000\nSUMMARY:Sales meeting\nLOCATION:Room 1"),
    )
    kept, _ = through_the_crm(data, session)
    assert [title for _, _, title in held(kept)] == ["Sales meeting"] * 2 + ["Pipeline review"] * 2 + [
        "Sales meeting"] * 2


def test_a_move_across_the_dst_change_keeps_the_time_of_day_for_the_later_ones(session: Any) -> None:
    """Saturday 9:00 moved to Sunday 9:00 over the night the clocks go forward: later ones are Sundays at 9:00,
    a day later on the wall clock (not the 23 hours between the two instants, which would make them 8:00)."""
    data = calendar(
        SERIES.format(bound="COUNT=4").replace("20260309T", "20260314T"),
        change("20260328T090000", "DTSTART;TZID=Europe/Amsterdam:20260329T090000\n"
               "DTEND;TZID=Europe/Amsterdam:20260329T100000\nSUMMARY:Sales meeting\nLOCATION:Room 1"),
    )
    activity = from_ical(data, CTX, "item").activity
    assert [start for start, _, _ in held(activity)] == [at(14, 9), at(21, 9), at(29, 9), at(5, 9, month=4)]
    assert shown(to_ical(activity, CTX)) == held(activity) == shown(data)


@pytest.mark.parametrize("moved_to", ["20260324T090000", "20260322T090000"], ids=["a day later", "a day earlier"])
def test_a_narrow_window_finds_an_occurrence_a_kept_range_moved_into_it(moved_to: str) -> None:
    """The engine asks whether an item has an occurrence in its sync window: one that a range moved in from
    outside is found, and one it moved out is not, as a calendar shows them."""
    data = calendar(
        SERIES.format(bound="INTERVAL=1"),
        change("20260323T090000", f"DTSTART;TZID=Europe/Amsterdam:{moved_to}\nSUMMARY:Sales meeting\nLOCATION:Room 1"),
    )
    activity = from_ical(data, CTX, "item").activity
    day = datetime(2027, 6, 7, tzinfo=AMS) + (date.fromisoformat(moved_to[:8]) - date(2026, 3, 23))
    window = (day.astimezone(UTC), (day + timedelta(days=1)).astimezone(UTC))
    monday = (datetime(2027, 6, 7, tzinfo=AMS).astimezone(UTC), datetime(2027, 6, 8, tzinfo=AMS).astimezone(UTC))
    assert [s for s, _, _ in held(activity, window)] == [s for s, _, _ in shown(data, window)] != []
    assert has_occurrence(activity, *window)
    assert not has_occurrence(activity, *monday) and shown(data, monday) == []
