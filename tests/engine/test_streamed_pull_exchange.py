"""An Exchange pass reads the mailbox's changed items a page at a time (``runner.PAGE_SIZE``): the
connector lists ItemIds with SyncFolderItems (:class:`~syncd.connectors.base.Paging`) and the engine
reads, plans and writes each page with GetItem before it reads the next. Over the EWS test server,
pages of 5 must give what one page of everything gives (the scenario: ``streamed_outlook``); the
refused item is a recurring task with neither start nor due date."""

from __future__ import annotations

from pathlib import Path

import pytest
from ews_fixture import ews_fixture  # noqa: F401  (the fixture `ews`)
from ews_server import EwsServer
from exchange_world import ExchangeWorld
from streamed_outlook import PAGE, Mailbox, N, assert_pages_change_nothing, three_passes
from world import OWNER

UNANCHORED = (
    "<t:Task><t:Subject>Water the plants</t:Subject>"
    "<t:Recurrence><t:DailyRegeneration><t:Interval>3</t:Interval></t:DailyRegeneration>"
    "<t:NoEndRecurrence><t:StartDate>2026-01-05</t:StartDate></t:NoEndRecurrence></t:Recurrence></t:Task>"
)


def mailbox(server: EwsServer) -> Mailbox:
    return Mailbox(
        add_unanchored=lambda outlook: server.put_item(OWNER, "tasks", UNANCHORED),
        mark=lambda: len(server.operations()),
        reads=lambda since: server.operations()[since:].count("GetItem"),
        rename=lambda outlook, item, subject: outlook.edit(item, Subject=subject),
        ids=r"[A-Za-z0-9+/]{24,}=*",
    )


def test_an_exchange_pull_in_pages_gives_what_one_page_gives(
    tmp_path: Path, ews: EwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "paged").mkdir()
    (tmp_path / "whole").mkdir()
    paged = three_passes(ExchangeWorld(tmp_path / "paged", None, None, server=ews),  # type: ignore[arg-type]
                         mailbox(ews), PAGE, monkeypatch)
    # The second world binds Anna's mailbox again: emptied first.
    for folder in ("calendar", "tasks"):
        for item in ews.items(OWNER, folder):
            ews.delete_item(item.id)
    whole = three_passes(ExchangeWorld(tmp_path / "whole", None, None, server=ews),  # type: ignore[arg-type]
                         mailbox(ews), 10_000, monkeypatch)

    # A page is read with one GetItem (and written) before the next is read: pages of 5 over the 22
    # listed items cost 5 GetItems where one page costs 1, and the first write comes before the last read.
    pages = -(-(N + 1) // PAGE)
    assert_pages_change_nothing(paged, whole, (pages, 1), "remote:<id>: unreadable calendar item: <id>: Recurrence: "
                                "a recurring task without start or due date")
