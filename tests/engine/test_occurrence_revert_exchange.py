"""An occurrence the CRM gives back to its series (its override removed) is the series' again in Exchange."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ews_fixture import (
    Outlook,
    ews_fixture,  # noqa: F401  (the fixture `ews`)
)
from exchange_world import ExchangeWorld, world  # noqa: F401  (the fixture `world`)
from ews_server import occurrences as ews_occurrences
from world import idle, meeting, soon

from syncd.model import Override, Recurrence, ShowAs


def shown(outlook: Outlook, crm: str) -> dict[datetime, tuple[datetime, datetime, str, str, str, str]]:
    """Each occurrence as Outlook shows it, by its original start: start, end, subject, location, body,
    free/busy."""
    master = outlook.by_crm_id(crm)
    out = {}
    for occ in ews_occurrences.series(master):
        if occ.deleted:
            continue
        view = ews_occurrences.view(master, occ)
        out[occ.original_start] = (occ.start, occ.end, *(view.text(name) or "" for name in (
            "Subject", "Location", "Body", "LegacyFreeBusyStatus")))
    return out


def test_an_occurrence_whose_override_the_crm_removes_goes_back_to_the_series(world: ExchangeWorld) -> None:
    outlook = world.bind()
    first = soon(1, 9)
    second, third, fourth = (first + timedelta(weeks=n) for n in (1, 2, 3))
    hour = timedelta(hours=1)
    world.save(meeting("r1", "Weekly", start=first, end=first + hour, recurrence=Recurrence("FREQ=WEEKLY;COUNT=4")))
    assert world.sync().counts["remote_created"] == 1

    # The CRM moves the second occurrence, renames it, makes it free; cancels the third; renames the fourth.
    moved = Override(second, start=second + timedelta(hours=3), end=second + timedelta(hours=5),
                     subject="Weekly (with the customer)", description="Agenda", location="Room 4",
                     show_as=ShowAs.FREE)
    cancelled = Override(third, status="cancelled")
    last = Override(fourth, subject="Weekly (last one)")
    series = world.get("r1")
    world.save(series.replace(recurrence=Recurrence("FREQ=WEEKLY;COUNT=4", overrides=(moved, cancelled, last))))
    report = world.sync()
    assert report.counts["remote_updated"] == 1, (dict(report.counts), report.errors)
    at = shown(outlook, "r1")
    assert at[second.astimezone(UTC)] == (
        (second + timedelta(hours=3)).astimezone(UTC), (second + timedelta(hours=5)).astimezone(UTC),
        "Weekly (with the customer)", "Room 4", "Agenda", "Free")
    assert at[third.astimezone(UTC)][5] == "Free"
    assert idle(world)

    # Two overrides removed: those occurrences are the series' again (time, length, title, place, busy).
    world.save(world.get("r1").replace(recurrence=Recurrence("FREQ=WEEKLY;COUNT=4", overrides=(last,))))
    world.server.requests.clear()
    report = world.sync()
    assert report.counts["remote_updated"] == 1, (dict(report.counts), report.errors)
    # The master's (syncd's data) and one per occurrence; the pattern is not rewritten, which would
    # drop every exception, the fourth's too.
    assert world.server.operations().count("UpdateItem") == 3, world.server.operations()
    at = shown(outlook, "r1")
    for original in (first, second, third):
        key = original.astimezone(UTC)
        assert at[key] == (key, key + hour, "Weekly", "", "", "Busy"), original
    key = fourth.astimezone(UTC)
    assert at[key] == (key, key + hour, "Weekly (last one)", "", "", "Busy")
    assert [(o.recurrence_id, o.subject) for o in world.get("r1").recurrence.overrides] == [(fourth, last.subject)]
    assert idle(world)

    # Exchange keeps what was written to an occurrence when the series changes it: the series' new title and
    # place reach the occurrences given back too (the fourth keeps its own title).
    world.save(world.get("r1").replace(subject="Weekly sync", location="HQ"))
    assert world.sync().counts["remote_updated"] == 1
    at = shown(outlook, "r1")
    assert [at[o.astimezone(UTC)][2:4] for o in (first, second, third, fourth)] == [
        ("Weekly sync", "HQ"), ("Weekly sync", "HQ"), ("Weekly sync", "HQ"), ("Weekly (last one)", "HQ")]
    assert [(o.recurrence_id, o.subject) for o in world.get("r1").recurrence.overrides] == [(fourth, last.subject)]
    assert idle(world)


def test_an_occurrence_removed_by_the_crm_after_its_override_is_deleted_not_reverted(world: ExchangeWorld) -> None:
    outlook = world.bind()
    first = soon(1, 9)
    second = first + timedelta(weeks=1)
    rule = "FREQ=WEEKLY;COUNT=3"
    world.save(meeting("r2", "Weekly", start=first, end=first + timedelta(hours=1), recurrence=Recurrence(
        rule, overrides=(Override(second, subject="Weekly (moved)", start=second + timedelta(hours=2)),))))
    world.sync()
    world.save(world.get("r2").replace(recurrence=Recurrence(rule, exdates=(second,))))
    world.server.requests.clear()
    assert world.sync().counts["remote_updated"] == 1
    assert world.server.operations().count("DeleteItem") == 1 and "UpdateItem" not in world.server.operations()
    assert outlook.by_crm_id("r2").deleted_occurrences == {second.astimezone(UTC)}
    assert second.astimezone(UTC) not in shown(outlook, "r2")
    assert idle(world)
