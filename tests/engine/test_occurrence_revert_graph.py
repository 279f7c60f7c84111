"""An occurrence the CRM gives back to its series (its override removed) is the series' again in Outlook,
through Microsoft Graph."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from graph_fixture import graph_fixture, remote  # noqa: F401  (the fixture `graph`)
from graph_server import GraphServer
from world import OWNER, World, idle, meeting, soon

from syncd.mapping import graph_props as gp
from syncd.model import Override, Recurrence, ShowAs


@dataclass
class GraphWorld(World):
    server: GraphServer | None = None

    def bind(self, name: str = "anna", owner: str = OWNER) -> Any:  # type: ignore[override]
        assert self.server is not None
        try:
            self.server.mailbox(owner)
        except KeyError:
            self.server.add_mailbox(owner, owner.split("@", maxsplit=1)[0].title())
        self.bindings.append({"name": name, "owner": owner, "remote": remote(self.server, owner)})
        return self.server.client(owner)

    def app_requests(self) -> list[tuple[str, str]]:
        """(method, path below the mailbox) of the Graph requests syncd sent."""
        assert self.server is not None
        return [(r.method, r.path.split("@example.com/", 1)[-1]) for r in self.server.requests
                if r.path.startswith("/v1.0/") and not r.batch]


@pytest.fixture
def world(tmp_path: Path, graph: GraphServer) -> Iterator[GraphWorld]:
    yield GraphWorld(tmp_path, None, None, server=graph)  # type: ignore[arg-type]


def shown(world: GraphWorld, http: Any, first: datetime, last: datetime) -> dict[datetime, tuple[Any, ...]]:
    """Each occurrence of the one series as Outlook shows it, by its original start: start, end, subject,
    location, body, free/busy."""
    assert world.server is not None
    [master] = world.server.events(OWNER)
    params = {"startDateTime": first.isoformat(), "endDateTime": (last + timedelta(days=1)).isoformat()}
    found = http.get(f"events/{master['id']}/instances", params=params).json()["value"]
    return {gp.instant(o["originalStart"]): (gp.instant(o["start"]), gp.instant(o["end"]), o["subject"],
                                             (o.get("location") or {}).get("displayName") or "",
                                             gp.body_text(o.get("body")) or "", o["showAs"])
            for o in found}


def test_an_occurrence_whose_override_the_crm_removes_goes_back_to_the_series(world: GraphWorld) -> None:
    http = world.bind()
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
    at = shown(world, http, first, fourth)
    assert at[second.astimezone(UTC)] == (
        second + timedelta(hours=3), second + timedelta(hours=5), "Weekly (with the customer)", "Room 4", "Agenda",
        "free")
    assert at[third.astimezone(UTC)][5] == "free"
    assert idle(world)

    # Two overrides removed: those occurrences are the series' again (time, length, title, place, busy).
    world.save(world.get("r1").replace(recurrence=Recurrence(rule, overrides=(last,))))
    assert world.server is not None
    world.server.requests.clear()
    report = world.sync()
    assert report.counts["remote_updated"] == 1, (dict(report.counts), report.errors)
    at = shown(world, http, first, fourth)
    for original in (first, second, third):
        assert at[original.astimezone(UTC)] == (original, original + hour, "Weekly", "", "", "busy"), original
    # The pattern is not rewritten (that would drop every exception, the fourth's too).
    assert at[fourth.astimezone(UTC)] == (fourth, fourth + hour, "Weekly (last one)", "", "", "busy")
    # One PATCH per occurrence given back, beside the master's.
    patches = [path for method, path in world.app_requests() if method == "PATCH"]
    assert len(patches) == 3, world.app_requests()
    assert [(o.recurrence_id, o.subject) for o in world.get("r1").recurrence.overrides] == [(fourth, last.subject)]
    assert idle(world)

    # Exchange keeps what was written to an occurrence when the series changes it: the series' new title and
    # place reach the occurrences given back too (the fourth keeps its own title).
    world.save(world.get("r1").replace(subject="Weekly sync", location="HQ"))
    assert world.sync().counts["remote_updated"] == 1
    at = shown(world, http, first, fourth)
    assert [at[o.astimezone(UTC)][2:4] for o in (first, second, third, fourth)] == [
        ("Weekly sync", "HQ"), ("Weekly sync", "HQ"), ("Weekly sync", "HQ"), ("Weekly (last one)", "HQ")]
    assert [(o.recurrence_id, o.subject) for o in world.get("r1").recurrence.overrides] == [(fourth, last.subject)]
    assert idle(world)
