"""A Graph pass reads the mailbox's changed items a page at a time (``runner.PAGE_SIZE``): the connector
lists refs from calendarView/delta and the To Do delta (:class:`~syncd.connectors.base.Paging`) and the
engine reads, plans and writes each page with ``$batch`` GETs before it reads the next. Over the Graph
test server, pages of 5 must give what one page of everything gives (the scenario: ``streamed_outlook``);
the refused item is a recurring To Do task without a due date."""

from __future__ import annotations

from pathlib import Path

import pytest
from graph_fixture import graph_fixture  # noqa: F401  (the fixture `graph`)
from graph_server import GraphServer
from graph_world import GraphWorld, Outlook
from streamed_outlook import PAGE, Mailbox, N, assert_pages_change_nothing, three_passes
from world import OWNER

UNANCHORED = {"title": "Water the plants",
              "recurrence": {"pattern": {"type": "daily", "interval": 3},
                             "range": {"type": "noEnd", "startDate": "2026-01-05"}}}


def mailbox(server: GraphServer) -> Mailbox:
    def add_unanchored(outlook: Outlook) -> None:
        outlook.http.post(f"todo/lists/{outlook.list_id()}/tasks", json=UNANCHORED).raise_for_status()

    def batches(since: int) -> int:
        """``$batch`` POSTs syncd sent after the first ``since`` requests."""
        return sum(1 for r in server.requests[since:] if not r.batch and r.path.endswith("/$batch"))

    def items_read(since: int) -> dict[str, int]:
        return {"items_read": sum(1 for r in server.requests[since:] if r.batch and r.method == "GET")}

    return Mailbox(
        add_unanchored=add_unanchored,
        mark=lambda: len(server.requests),
        reads=batches,
        rename=lambda outlook, item, subject: outlook.edit(item, subject=subject),
        ids=r"[A-Za-z0-9_-]{24,}",
        after_first=items_read,
    )


def test_a_graph_pull_in_pages_gives_what_one_page_gives(
    tmp_path: Path, graph: GraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "paged").mkdir()
    (tmp_path / "whole").mkdir()
    paged = three_passes(GraphWorld(tmp_path / "paged", None, None, server=graph),  # type: ignore[arg-type]
                         mailbox(graph), PAGE, monkeypatch)
    # The second world binds Anna's mailbox again: emptied first.
    outlook = Outlook(graph, OWNER)
    for item in outlook.events() + outlook.tasks():
        outlook.delete(item)
    whole = three_passes(GraphWorld(tmp_path / "whole", None, None, server=graph),  # type: ignore[arg-type]
                         mailbox(graph), 10_000, monkeypatch)

    # Every listed item is read once either way (21 events, 1 task), 20 to a $batch within a page: pages
    # of 5 cost 5 batches where one page costs 2 (and the first pass's creates one more), and the
    # first write comes before the last page is read.
    assert (paged.pop("items_read"), whole.pop("items_read")) == (N + 1, N + 1)
    pages = -(-(N + 1) // PAGE)
    assert_pages_change_nothing(paged, whole, (pages + 1, 2 + 1), "remote:todo:<id>: unreadable calendar item: <id>: "
                                "recurrence: a recurring task without a due date")
