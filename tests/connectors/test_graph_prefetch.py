"""Updates the CRM made, read in one ``$batch`` of 20 GETs instead of a ``$batch`` before every PATCH
(issue 14), on the Graph test server.

The event syncd writes over must still be the event at the changeKey the engine decided on, so what
other clients stored on it survives and an Outlook edit made since is not overwritten: these check the
batched read keeps the guarantees of the read it replaces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from graph_fixture import USER, Outlook, graph_fixture, remote  # noqa: F401  (the fixture `graph`)
from graph_server import GraphServer

from syncd.config import GraphRemote
from syncd.connectors.base import Prefetching
from syncd.connectors.graph import GraphConnector
from syncd.errors import NotFound, PreconditionFailed
from syncd.mapping.context import MappingContext
from syncd.model import Activity, CrmUser, Kind

AMS = ZoneInfo("Europe/Amsterdam")
CTX = MappingContext(owner=CrmUser(USER, "Anna", "Europe/Amsterdam"))
N = 20
#: What Outlook set on every event syncd made (syncd does not map it): an update must keep it.
OUTLOOKS: dict[str, Any] = {"responseRequested": False}


def meeting(activity_id: str, subject: str, day: int) -> Activity:
    start = datetime.now(AMS).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=day)
    return Activity(id=activity_id, kind=Kind.APPOINTMENT, subject=subject, owner=USER, start=start,
                    end=start + timedelta(hours=1), timezone="Europe/Amsterdam")


class Calendar:
    """``count`` events syncd made and Outlook then edited; ``etags`` are the changeKeys the engine knows."""

    def __init__(self, server: GraphServer, count: int) -> None:
        self.server = server
        self.outlook = Outlook(server)
        self.graph = GraphConnector(GraphRemote(**remote(server)), CTX)
        self.ids = [f"p{n:02d}" for n in range(count)]
        made = self.graph.create_many([meeting(key, f"Meeting {key}", n + 1) for n, key in enumerate(self.ids)])
        self.refs: dict[str, str] = {}
        self.etags: dict[str, str | None] = {}
        for key, result in zip(self.ids, made, strict=True):
            assert not isinstance(result, Exception), result
            self.refs[key] = result.ref
            self.outlook_edit(key, **OUTLOOKS)
        server.requests.clear()

    def outlook_edit(self, key: str, **fields: Any) -> None:
        self.etags[key] = self.outlook.edit(self.refs[key], **fields)["changeKey"]

    def update(self, key: str, subject: str, etag: str | None = None) -> None:
        day = self.ids.index(key) + 1
        written = self.graph.update(self.refs[key], etag or self.etags[key], meeting(key, subject, day))
        self.etags[key] = written.etag

    def holds(self, key: str, **fields: Any) -> bool:
        event = self.server.event(self.refs[key])
        return all(event.get(name) == value for name, value in fields.items())

    def requests(self) -> list[str]:
        """What reached Graph: top-level ``$batch`` POSTs and the methods of the other requests (the
        token requests left out)."""
        top = [r for r in self.server.requests if not r.batch and "/oauth2/" not in r.path]
        return ["$batch" if r.path.endswith("/$batch") else r.method for r in top]

    def reads_in_batches(self) -> int:
        return sum(1 for r in self.server.requests if r.batch and r.method == "GET")


@pytest.fixture
def calendar(graph: GraphServer) -> Iterator[Callable[[int], Calendar]]:
    made: list[Calendar] = []

    def make(count: int) -> Calendar:
        made.append(Calendar(graph, count))
        return made[-1]

    yield make
    for cal in made:
        cal.graph.close()


@pytest.fixture
def cal(calendar: Callable[[int], Calendar]) -> Calendar:
    return calendar(3)


def test_n_prefetched_updates_cost_one_batch_and_keep_outlooks_fields(calendar: Callable[[int], Calendar]) -> None:
    cal = calendar(N)
    assert isinstance(cal.graph, Prefetching)
    cal.graph.prefetch([cal.refs[k] for k in cal.ids])
    for key in cal.ids:
        cal.update(key, f"Renamed {key}")
    assert Counter(cal.requests()) == {"$batch": 1, "PATCH": N}
    assert cal.reads_in_batches() == N
    for key in cal.ids:
        assert cal.holds(key, subject=f"Renamed {key}", **OUTLOOKS)


def test_an_event_outlook_changes_after_the_batched_read_is_not_written_over(cal: Calendar) -> None:
    """The PATCH's If-Match carries the changeKey the engine decided on: Graph answers 412, Outlook's
    edit stays; the engine's re-read then writes over the event as it now is."""
    first, second = cal.ids[:2]
    cal.graph.prefetch([cal.refs[k] for k in cal.ids])
    cal.update(first, "Renamed")  # reads the batch
    known = cal.etags[second]
    cal.outlook_edit(second, location={"displayName": "Room 4.12"})
    with pytest.raises(PreconditionFailed):
        cal.update(second, "Renamed", known)
    assert cal.holds(second, subject=f"Meeting {second}", **OUTLOOKS)
    assert cal.server.event(cal.refs[second])["location"]["displayName"] == "Room 4.12"
    assert cal.requests() == ["$batch", "PATCH", "PATCH"]
    [fresh] = cal.graph.fetch([cal.refs[second]])
    cal.graph.update(fresh.ref, fresh.etag, meeting(second, "Renamed", 2), fresh.raw)
    assert cal.holds(second, subject="Renamed", **OUTLOOKS)


def test_a_copy_at_another_changekey_than_the_engines_is_not_used(cal: Calendar) -> None:
    """Outlook edited the event after the engine decided, before the batch was read: the batch's copy
    is newer than what the engine decided on, so the update reads it as before, and Graph refuses the
    PATCH made on the engine's changeKey."""
    key = cal.ids[0]
    known = cal.etags[key]
    cal.outlook_edit(key, location={"displayName": "Room 4.12"})
    cal.graph.prefetch([cal.refs[key]])
    with pytest.raises(PreconditionFailed):
        cal.update(key, "Renamed", known)
    assert cal.requests() == ["$batch", "$batch", "PATCH"]
    assert cal.holds(key, subject=f"Meeting {key}")


def test_a_failed_batch_falls_back_to_a_read_per_update(cal: Calendar) -> None:
    cal.server.fault("POST", r"/\$batch$", status=500)
    cal.graph.prefetch([cal.refs[k] for k in cal.ids])
    for key in cal.ids:
        cal.update(key, f"Renamed {key}")
    assert cal.requests() == ["$batch"] + ["$batch", "PATCH"] * 3
    assert all(cal.holds(key, subject=f"Renamed {key}", **OUTLOOKS) for key in cal.ids)


def test_an_event_the_batch_could_not_read_is_read_by_its_update(cal: Calendar) -> None:
    """Graph answers one GET of the batch with an error: the other updates use the batch, that one
    reads its event alone (here: gone)."""
    first, second, third = cal.ids
    cal.outlook.delete(cal.refs[second])
    cal.graph.prefetch([cal.refs[k] for k in cal.ids])
    cal.update(first, "Renamed")
    with pytest.raises(NotFound):
        cal.update(second, "Renamed")
    cal.update(third, "Renamed")
    assert cal.requests() == ["$batch", "PATCH", "$batch", "PATCH"]
    assert cal.holds(first, subject="Renamed") and cal.holds(third, subject="Renamed")


def test_the_batch_lasts_one_pass(cal: Calendar) -> None:
    """Reading the change feed starts a new pass: what was to be read in a batch is read alone again."""
    state = cal.graph.changes(None, {}).state
    cal.graph.prefetch([cal.refs[k] for k in cal.ids])
    cal.graph.changes(state, {cal.refs[k]: cal.etags[k] for k in cal.ids})
    cal.server.requests.clear()
    for key in cal.ids:
        cal.update(key, "Renamed")
    assert cal.requests() == ["$batch", "PATCH"] * 3
    assert cal.reads_in_batches() == 3
