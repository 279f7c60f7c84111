"""A Graph pass reads the mailbox's changed items a page at a time (``runner.PAGE_SIZE``): the connector
lists refs from calendarView/delta and the To Do delta (:class:`~syncd.connectors.base.Paging`) and the
engine reads, plans and writes each page with ``$batch`` GETs before it reads the next. Over the Graph
test server, pages of 5 must give what one page of everything gives: an item the mapping refuses (a
recurring To Do task without a due date: its series has no anchor), an appointment entered by hand on
both sides, an activity only the CRM has; then an Outlook deletion, an Outlook edit and a CRM edit in
the middle of the next pass's pages."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from graph_fixture import graph_fixture  # noqa: F401  (the fixture `graph`)
from graph_server import GraphServer
from graph_world import GraphWorld, Outlook
from world import OWNER, meeting, soon

from syncd.engine import runner
from syncd.model import Kind

PAGE = 5
N = 21
BY_HAND, DELETED, EDITED, CRM_EDITED = 12, 10, 3, 18
UNANCHORED = {"title": "Water the plants",
              "recurrence": {"pattern": {"type": "daily", "interval": 3},
                             "range": {"type": "noEnd", "startDate": "2026-01-05"}}}


def batches(server: GraphServer, since: int) -> int:
    """``$batch`` POSTs syncd sent after the first ``since`` requests."""
    return sum(1 for r in server.requests[since:] if not r.batch and r.path.endswith("/$batch"))


def run(world: GraphWorld, page: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Three passes (the first pull, changes on both sides, a quiet one) with pages of ``page`` items;
    what a user can see of them, and the reads of the first pass."""
    assert world.server is not None
    server = world.server
    monkeypatch.setattr(runner, "PAGE_SIZE", page)
    outlook: Outlook = world.bind(past_days=30, future_days=365)
    at = {i: soon(1 + i, 9) for i in range(N)}
    made = [outlook.create_event(f"Visit #{i}", at[i], at[i] + timedelta(hours=1)) for i in range(N)]
    outlook.http.post(f"todo/lists/{outlook.list_id()}/tasks", json=UNANCHORED).raise_for_status()
    # The same meeting entered by hand on both sides before syncd ran: paired, not doubled.
    world.save(meeting("by-hand", f"Visit #{BY_HAND}", start=at[BY_HAND], end=at[BY_HAND] + timedelta(hours=1)),
               meeting("crm-only", "Only in the CRM", days=5))
    before_first_write: list[int] = []
    start = len(server.requests)

    def progress(done: int, total: int) -> None:
        before_first_write.append(batches(server, start))

    app = world.app()
    first = app.run_pass(app.config.binding("anna"), progress=progress)
    read = [r for r in server.requests[start:] if r.batch and r.method == "GET"]
    first_batches = batches(server, start)

    outlook.delete(made[DELETED])
    outlook.edit(made[EDITED], subject="Visit (moved to the afternoon)")
    crm_edited = next(a for a in world.all() if a.subject == f"Visit #{CRM_EDITED}")
    world.save(crm_edited.replace(subject="Visit (agenda from the CRM)"))
    second = world.sync()
    third = world.sync()

    activities = world.all()
    return {
        "counts": [dict(r.counts) for r in (first, second, third)],
        "results": [r.result for r in (first, second, third)],
        # An id is the server's; the reason is what counts.
        "errors": sorted(re.sub(r"[A-Za-z0-9_-]{24,}", "<id>", e) for e in first.errors + second.errors),
        "crm": sorted((a.subject, a.kind, a.owner) for a in activities),
        "linked": len(world.sql("SELECT activity_id FROM sync_links WHERE binding = 'anna'")),
        "outlook": outlook.subjects(),
        "items_read": len(read),
        "first_batches": first_batches,
        "batches_before_first_write": before_first_write[0],
    }


def test_a_graph_pull_in_pages_gives_what_one_page_gives(
    tmp_path: Path, graph: GraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "paged").mkdir()
    (tmp_path / "whole").mkdir()
    paged = run(GraphWorld(tmp_path / "paged", None, None, server=graph), PAGE, monkeypatch)  # type: ignore[arg-type]
    # The second world binds Anna's mailbox again: emptied first.
    outlook = Outlook(graph, OWNER)
    for item in outlook.events() + outlook.tasks():
        outlook.delete(item)
    whole = run(GraphWorld(tmp_path / "whole", None, None, server=graph), 10_000, monkeypatch)  # type: ignore[arg-type]

    # Every listed item is read once either way (21 events, 1 task), 20 to a $batch within a page: pages
    # of 5 cost 5 batches where one page costs 2 (and the first pass's creates one more), and the
    # first write comes before the last page is read.
    pages = -(-(N + 1) // PAGE)
    assert (paged.pop("items_read"), whole.pop("items_read")) == (N + 1, N + 1)
    assert (paged.pop("first_batches"), whole.pop("first_batches")) == (pages + 1, 2 + 1)
    assert paged.pop("batches_before_first_write") < pages
    whole.pop("batches_before_first_write")
    assert paged == whole

    assert paged["results"] == ["ok", "ok", "ok"]
    first, second, third = paged["counts"]
    assert first["crm_created"] == N - 1 and first["paired"] == 1 and first["remote_created"] == 1
    assert first["errors"] == 1
    # Refused in the first pass and in the second, which retries it.
    refused = "remote:todo:<id>: unreadable calendar item: <id>: recurrence: a recurring task without a due date"
    assert paged["errors"] == [refused] * 2
    assert {k: second[k] for k in ("crm_deleted", "crm_updated", "remote_updated")} == dict.fromkeys(
        ("crm_deleted", "crm_updated", "remote_updated"), 1)
    assert not third, third
    subjects = [s for s, _, _ in paged["crm"]]
    assert len(subjects) == len(set(subjects)) == N
    assert f"Visit #{DELETED}" not in subjects and "Only in the CRM" in subjects
    assert "Visit (moved to the afternoon)" in subjects and "Visit (agenda from the CRM)" in paged["outlook"]
    assert all(owner == OWNER and kind == Kind.APPOINTMENT for _, kind, owner in paged["crm"])
    assert paged["linked"] == N
