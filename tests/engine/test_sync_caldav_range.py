"""A change to "this and every later occurrence" (RECURRENCE-ID;RANGE=THISANDFUTURE) made on a phone, through a
real Radicale calendar, the CRM and back: the calendar keeps showing the same occurrences."""

from __future__ import annotations

from datetime import datetime, timedelta

import icalendar
import recurring_ical_events
from world import World, soon

SERIES = "weekly@example.org"


def series_with_a_later_change(first: datetime, bound: str) -> bytes:
    """A weekly sales meeting; from its third occurrence on an hour later, as a pipeline review."""
    cal = icalendar.Calendar()
    cal.add("PRODID", "-//phone//EN")
    cal.add("VERSION", "2.0")
    master = icalendar.Event()
    master.add("UID", SERIES)
    master.add("DTSTAMP", first)
    master.add("DTSTART", first)
    master.add("DTEND", first + timedelta(hours=1))
    master.add("RRULE", icalendar.vRecur.from_ical(f"FREQ=WEEKLY;{bound}"))
    master.add("SUMMARY", "Sales meeting")
    cal.add_component(master)
    change = icalendar.Event()
    change.add("UID", SERIES)
    change.add("DTSTAMP", first)
    change.add("RECURRENCE-ID", first + timedelta(weeks=2), parameters={"RANGE": "THISANDFUTURE"})
    change.add("DTSTART", first + timedelta(weeks=2, hours=1))
    change.add("DTEND", first + timedelta(weeks=2, hours=2))
    change.add("SUMMARY", "Pipeline review")
    cal.add_component(change)
    return cal.to_ical()


def shown(cal: icalendar.Calendar, first: datetime, weeks: int = 6) -> list[tuple[datetime, datetime, str]]:
    """What a CalDAV client shows of the series over its first ``weeks``."""
    found = recurring_ical_events.of(cal).between(first - timedelta(days=1), first + timedelta(weeks=weeks))
    return sorted((e["DTSTART"].dt, e["DTEND"].dt, str(e["SUMMARY"])) for e in found)


def test_a_change_to_every_later_occurrence_reaches_the_crm_and_survives_a_crm_edit(world: World) -> None:
    phone = world.bind()
    world.sync()
    first = soon(1, 9)
    assert phone.put(SERIES, series_with_a_later_change(first, "COUNT=5")) == 201
    before = shown(phone.get(SERIES)[0], first)
    assert [title for _, _, title in before] == ["Sales meeting"] * 2 + ["Pipeline review"] * 3

    report = world.sync()
    assert report.counts["crm_created"] == 1, dict(report.counts)
    [activity] = world.all()
    assert activity.recurrence is not None
    assert [(o.start - o.recurrence_id, o.subject) for o in activity.recurrence.overrides] == [  # type: ignore[operator]
        (timedelta(hours=1), "Pipeline review")
    ] * 3

    world.save(activity.replace(description="Agenda: the quarter's forecast"))
    report = world.sync()
    assert report.counts["remote_updated"] == 1, dict(report.counts)
    written, _ = phone.get(SERIES)
    assert shown(written, first) == before
    assert sum(world.sync().counts.values()) == 0


def test_an_endless_series_changed_from_one_occurrence_on_reaches_the_crm_as_a_range(world: World) -> None:
    """No last occurrence to carry the change to: the CRM keeps the range itself, and the calendar shows,
    after a CRM edit, the same occurrences (here over a year) with the range written back."""
    phone = world.bind()
    world.sync()
    first = soon(1, 9)
    assert phone.put(SERIES, series_with_a_later_change(first, "INTERVAL=1")) == 201
    phone.create_event("fine@example.org", "Fine", soon(2, 15))
    before = shown(phone.get(SERIES)[0], first, weeks=52)
    assert [title for _, _, title in before[:4]] == ["Sales meeting"] * 2 + ["Pipeline review"] * 2

    report = world.sync()
    assert report.result == "ok" and report.counts["crm_created"] == 2, dict(report.counts)
    assert not report.errors
    [activity] = [a for a in world.all() if a.subject == "Sales meeting"]
    assert activity.recurrence is not None
    [change] = activity.recurrence.overrides
    assert change.this_and_future and change.subject == "Pipeline review"

    world.save(activity.replace(description="Agenda: the quarter's forecast"))
    report = world.sync()
    assert report.counts["remote_updated"] == 1, dict(report.counts)
    written, _ = phone.get(SERIES)
    assert shown(written, first, weeks=52) == before
    assert b"RANGE=THISANDFUTURE" in written.to_ical()
    assert sum(world.sync().counts.values()) == 0
