"""An occurrence the CRM gives back to its series (its override removed) is the series' again in Outlook,
through EWS and through Microsoft Graph: each scenario is written once and run on both test servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ews_fixture import Outlook as EwsOutlook
from ews_fixture import ews_fixture  # noqa: F401  (the fixture `ews`)
from ews_server import occurrences as ews_occurrences
from exchange_world import ExchangeWorld
from graph_fixture import graph_fixture  # noqa: F401  (the fixture `graph`)
from graph_world import GraphWorld, crm_id
from graph_world import Outlook as GraphOutlook
from world import idle, meeting, soon

from syncd.mapping import graph_props as gp
from syncd.model import Override, Recurrence, ShowAs

#: Each occurrence of a series as Outlook shows it, by its original start: start, end, subject, location,
#: body, free/busy.
Shown = dict[Any, tuple[Any, ...]]


class Side:
    """One server as the scenarios read it: the user's Outlook and the writes syncd sent."""

    free: str  # free and busy as the server spells them
    busy: str

    def __init__(self, world: ExchangeWorld | GraphWorld) -> None:
        self.world = world
        self.outlook = world.bind()

    def clear_requests(self) -> None:
        assert self.world.server is not None
        self.world.server.requests.clear()

    def shown(self, crm: str, first: datetime, last: datetime) -> Shown:
        """The occurrences of the series of ``crm`` from ``first`` to ``last``'s day."""
        raise NotImplementedError

    def writes(self) -> dict[str, int]:
        """syncd's item updates and deletes since the requests were cleared."""
        raise NotImplementedError

    def removed(self, crm: str) -> set[Any]:
        """The occurrences the series of ``crm`` lists as deleted, as the server names them."""
        raise NotImplementedError

    def removed_name(self, crm: str, original: datetime) -> Any:
        """How the server names the deleted occurrence that originally started at ``original``."""
        raise NotImplementedError


class Exchange(Side):
    world: ExchangeWorld
    outlook: EwsOutlook
    free, busy = "Free", "Busy"  # LegacyFreeBusyStatus

    def shown(self, crm: str, first: datetime, last: datetime) -> Shown:
        master = self.outlook.by_crm_id(crm)
        out = {}
        for occ in ews_occurrences.series(master):
            if occ.deleted:
                continue
            view = ews_occurrences.view(master, occ)
            out[occ.original_start] = (occ.start, occ.end, *(view.text(name) or "" for name in (
                "Subject", "Location", "Body", "LegacyFreeBusyStatus")))
        return out

    def writes(self) -> dict[str, int]:
        assert self.world.server is not None
        operations = self.world.server.operations()
        return {"update": operations.count("UpdateItem"), "delete": operations.count("DeleteItem")}

    def removed(self, crm: str) -> set[Any]:
        return set(self.outlook.by_crm_id(crm).deleted_occurrences)

    def removed_name(self, crm: str, original: datetime) -> Any:
        return original.astimezone(UTC)


class Graph(Side):
    world: GraphWorld
    outlook: GraphOutlook
    free, busy = "free", "busy"  # showAs

    def shown(self, crm: str, first: datetime, last: datetime) -> Shown:
        [master] = self.outlook.events()
        assert crm_id(master) == crm
        found = self.outlook.occurrences(master, first, last + timedelta(days=1))
        return {gp.instant(o["originalStart"]): (gp.instant(o["start"]), gp.instant(o["end"]), o["subject"],
                                                 (o.get("location") or {}).get("displayName") or "",
                                                 gp.body_text(o.get("body")) or "", o["showAs"])
                for o in found}

    def writes(self) -> dict[str, int]:
        methods = [method for method, _ in self.world.app_requests()]
        return {"update": methods.count("PATCH"), "delete": methods.count("DELETE")}

    def removed(self, crm: str) -> set[Any]:
        return set(self.outlook.by_crm_id(crm)["cancelledOccurrences"])

    def removed_name(self, crm: str, original: datetime) -> Any:
        # Graph names a cancelled occurrence by its series and its day in the series' zone.
        return f"OID.{self.outlook.by_crm_id(crm)['id']}.{original.date().isoformat()}"


@pytest.fixture(params=["exchange", "graph"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Side:
    if request.param == "exchange":
        return Exchange(ExchangeWorld(tmp_path, None, None, server=request.getfixturevalue("ews")))  # type: ignore[arg-type]
    return Graph(GraphWorld(tmp_path, None, None, server=request.getfixturevalue("graph")))  # type: ignore[arg-type]


def test_an_occurrence_whose_override_the_crm_removes_goes_back_to_the_series(side: Side) -> None:
    world = side.world
    first = soon(1, 9)
    second, third, fourth = (first + timedelta(weeks=n) for n in (1, 2, 3))
    hour = timedelta(hours=1)
    rule = "FREQ=WEEKLY;COUNT=4"
    world.save(meeting("r1", "Weekly", start=first, end=first + hour, recurrence=Recurrence(rule)))
    assert world.sync().counts["remote_created"] == 1

    # The CRM moves the second occurrence, renames it, makes it free; cancels the third; renames the fourth.
    moved = Override(second, start=second + timedelta(hours=3), end=second + timedelta(hours=5),
                     subject="Weekly (with the customer)", description="Agenda", location="Room 4",
                     show_as=ShowAs.FREE)
    cancelled = Override(third, status="cancelled")
    last = Override(fourth, subject="Weekly (last one)")
    world.save(world.get("r1").replace(recurrence=Recurrence(rule, overrides=(moved, cancelled, last))))
    report = world.sync()
    assert report.counts["remote_updated"] == 1, (dict(report.counts), report.errors)
    at = side.shown("r1", first, fourth)
    assert at[second.astimezone(UTC)] == (
        second + timedelta(hours=3), second + timedelta(hours=5), "Weekly (with the customer)", "Room 4", "Agenda",
        side.free)
    assert at[third.astimezone(UTC)][5] == side.free
    assert idle(world)

    # Two overrides removed: those occurrences are the series' again (time, length, title, place, busy).
    world.save(world.get("r1").replace(recurrence=Recurrence(rule, overrides=(last,))))
    side.clear_requests()
    report = world.sync()
    assert report.counts["remote_updated"] == 1, (dict(report.counts), report.errors)
    # The master's (syncd's data) and one per occurrence given back; the pattern is not rewritten, which
    # would drop every exception, the fourth's too.
    assert side.writes()["update"] == 3, side.writes()
    at = side.shown("r1", first, fourth)
    for original in (first, second, third):
        assert at[original.astimezone(UTC)] == (original, original + hour, "Weekly", "", "", side.busy), original
    assert at[fourth.astimezone(UTC)] == (fourth, fourth + hour, "Weekly (last one)", "", "", side.busy)
    assert [(o.recurrence_id, o.subject) for o in world.get("r1").recurrence.overrides] == [(fourth, last.subject)]
    assert idle(world)

    # Exchange keeps what was written to an occurrence when the series changes it: the series' new title and
    # place reach the occurrences given back too (the fourth keeps its own title).
    world.save(world.get("r1").replace(subject="Weekly sync", location="HQ"))
    assert world.sync().counts["remote_updated"] == 1
    at = side.shown("r1", first, fourth)
    assert [at[o.astimezone(UTC)][2:4] for o in (first, second, third, fourth)] == [
        ("Weekly sync", "HQ"), ("Weekly sync", "HQ"), ("Weekly sync", "HQ"), ("Weekly (last one)", "HQ")]
    assert [(o.recurrence_id, o.subject) for o in world.get("r1").recurrence.overrides] == [(fourth, last.subject)]
    assert idle(world)


def test_an_occurrence_removed_by_the_crm_after_its_override_is_deleted_not_reverted(side: Side) -> None:
    world = side.world
    first = soon(1, 9)
    second = first + timedelta(weeks=1)
    rule = "FREQ=WEEKLY;COUNT=3"
    world.save(meeting("r2", "Weekly", start=first, end=first + timedelta(hours=1), recurrence=Recurrence(
        rule, overrides=(Override(second, subject="Weekly (moved)", start=second + timedelta(hours=2)),))))
    world.sync()
    world.save(world.get("r2").replace(recurrence=Recurrence(rule, exdates=(second,))))
    side.clear_requests()
    assert world.sync().counts["remote_updated"] == 1
    assert side.writes() == {"update": 0, "delete": 1}, side.writes()
    assert side.removed("r2") == {side.removed_name("r2", second)}
    assert second.astimezone(UTC) not in side.shown("r2", first, first + timedelta(weeks=2))
    assert idle(world)
