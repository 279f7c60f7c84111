"""An occurrence the CRM gives back to its series (its override removed, or some of its own values) is
written back to the series' values for Exchange and Graph, and such an occurrence reads as no override."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from mapping.test_graph import as_read
from mapping.test_occurrence_fields import AMS, CTX, FIRST, FOURTH, SECOND, THIRD, _exchange_series, series
from syncd.mapping import graph_props as gp
from syncd.mapping.ews import from_ews
from syncd.mapping.ews_fields import occurrence_fields_out
from syncd.mapping.graph import event_from_graph, event_to_graph, occurrence_patch
from syncd.mapping.outlook_recurrence import OccurrenceChange, occurrence_changes
from syncd.model import Override, Recurrence, Sensitivity, ShowAs

HOUR = timedelta(hours=1)
MOVED = Override(SECOND, start=SECOND + 3 * HOUR, end=SECOND + 5 * HOUR, subject="Stand-up (customer)",
                 description="Agenda", location="Room 4", reminder_minutes=60, sensitivity=Sensitivity.PRIVATE,
                 show_as=ShowAs.FREE)
CANCELLED = Override(THIRD, status="cancelled")
KEPT = Override(FOURTH, subject="Stand-up (last)")


def _by_start(changes: list[OccurrenceChange]) -> dict[object, OccurrenceChange]:
    return {c.original_start: c for c in changes}


def test_an_override_the_crm_removes_gives_the_occurrence_the_series_values_back() -> None:
    had = series(MOVED, CANCELLED, KEPT).recurrence
    now = series(KEPT).replace(location="HQ")  # the series' own place, which the second occurrence shows again
    changes = _by_start(occurrence_changes(now, had, service="ews"))
    assert set(changes) == {SECOND, THIRD}  # the fourth is as Exchange has it: untouched
    second = changes[SECOND]
    assert (second.index, second.delete) == (2, False)
    assert (second.start, second.end) == (SECOND, SECOND + HOUR)  # its own time, the series' length
    assert (second.subject, second.description, second.location) == ("Stand-up", "", "HQ")
    assert occurrence_fields_out(second) == {"sensitivity": "Normal", "reminder_is_set": True,
                                             "reminder_minutes_before_start": 15, "legacy_free_busy_status": "Busy"}
    assert occurrence_patch(second, CTX.options) == {"sensitivity": "normal", "isReminderOn": True,
                                                      "reminderMinutesBeforeStart": 15, "showAs": "busy"}
    # Only what the cancelled one had of its own: its look (it showed free); its time and texts follow the series.
    third = changes[THIRD]
    assert third.series_look and (third.start, third.end, third.subject, third.location) == (None,) * 4
    assert occurrence_patch(third, CTX.options) == {"showAs": "busy"}


def test_an_override_whose_values_go_back_to_none_has_them_written_back() -> None:
    had = series(MOVED).recurrence
    now = series(Override(SECOND, end=SECOND + 2 * HOUR, subject="Stand-up (customer)"))
    [change] = occurrence_changes(now, had, service="graph")
    assert (change.start, change.end) == (SECOND, SECOND + 2 * HOUR)
    assert (change.subject, change.description, change.location) == ("Stand-up (customer)", "", "")


def test_an_override_replaced_by_an_exdate_is_only_deleted() -> None:
    had = series(MOVED).recurrence
    now = series().replace(recurrence=Recurrence("FREQ=WEEKLY;COUNT=6", exdates=(SECOND,)))
    assert occurrence_changes(now, had, service="ews") == [OccurrenceChange(SECOND, 2, delete=True)]


def test_nothing_is_given_back_after_the_pattern_is_rewritten() -> None:
    """A rewritten pattern drops every exception (``current`` is ``None``): only the overrides are written."""
    assert list(_by_start(occurrence_changes(series(KEPT), None, service="ews"))) == [FOURTH]
    assert occurrence_changes(series(), None, service="ews") == []


def test_an_exception_showing_the_series_values_reads_as_no_override() -> None:
    """What Exchange and Graph hold after the write: an exception with the series' own values."""
    master, exceptions = _exchange_series(series(), {SECOND: {}, THIRD: {"subject": "Stand-up (moved)"}})
    read = from_ews(master, CTX, occurrences=exceptions).activity.recurrence
    assert read is not None and read.overrides == (Override(THIRD, subject="Stand-up (moved)"),)

    event = as_read(event_to_graph(series(), CTX, invitations=False))
    rows = []
    for at, subject in ((SECOND, "Stand-up"), (THIRD, "Stand-up (moved)")):
        row = {k: v for k, v in event.items() if k not in ("recurrence", "id", "type")}
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        row.update(id=f"AAMkExc{stamp}", type="exception", originalStart=stamp, start=gp.dtz(at, "UTC"),
                   end=gp.dtz(at + HOUR, "UTC"), subject=subject)
        rows.append(row)
    event["exceptionOccurrences"] = rows
    read = event_from_graph(event, CTX).activity.recurrence
    assert read is not None and read.overrides == (Override(THIRD, subject="Stand-up (moved)"),)


def test_exceptions_that_follow_the_series_are_given_its_new_values() -> None:
    """Exchange keeps a value written to an occurrence (the series' title given back) when the series changes
    it later: each exception it holds gets the series' new values, except those it has of its own."""
    shown = series(KEPT)  # as read: the second was given back (no override), the fourth has its own title
    now = shown.replace(subject="Stand-up (new)", reminder_minutes=5)
    held = [SECOND.astimezone(UTC), FOURTH.astimezone(UTC)]
    changes = occurrence_changes(now, shown.recurrence, service="ews", shown=shown, exceptions=held)
    assert changes == [OccurrenceChange(FOURTH, 4, reminder=(5,)),
                       OccurrenceChange(SECOND, 2, subject="Stand-up (new)", reminder=(5,))]
    assert occurrence_changes(shown, shown.recurrence, service="ews", shown=shown, exceptions=held) == []
    # A rewritten pattern has no exceptions left to follow.
    assert occurrence_changes(now, None, service="ews", shown=shown, exceptions=held) == [
        OccurrenceChange(FOURTH, 4, subject="Stand-up (last)")]


def test_an_all_day_series_exception_is_known_by_its_day() -> None:
    """Exchange gives an all-day exception's original start as its midnight in the item's zone."""
    day = FIRST.date()
    whole = series().replace(all_day=True, start=day, end=day + timedelta(days=1))
    midnight = datetime.combine(day + timedelta(weeks=1), time(), tzinfo=AMS).astimezone(UTC)
    [change] = occurrence_changes(whole.replace(subject="Off-site"), whole.recurrence, service="graph",
                                  shown=whole, exceptions=[midnight])
    assert (change.original_start, change.index, change.subject) == (day + timedelta(weeks=1), 2, "Off-site")
