"""An Exchange pass reads the mailbox's changed items a page at a time (``runner.PAGE_SIZE``): the
connector lists ItemIds with SyncFolderItems (:class:`~syncd.connectors.base.Paging`) and the engine
reads, plans and writes each page with GetItem before it reads the next. Over the EWS test server,
pages of 5 must give what one page of everything gives: an item the mapping refuses (a recurring task
with neither start nor due date: its series has no anchor), an appointment entered by hand on both
sides, an activity only the CRM has; then an Outlook deletion, an Outlook edit and a CRM edit in the
middle of the next pass's pages."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ews_fixture import Outlook, ews_fixture  # noqa: F401  (the fixture `ews`)
from ews_server import EwsServer
from exchange_world import ExchangeWorld
from world import OWNER, meeting, soon

from syncd.engine import runner
from syncd.model import Kind

PAGE = 5
N = 21
BY_HAND, DELETED, EDITED, CRM_EDITED = 12, 10, 3, 18
UNANCHORED = (
    "<t:Task><t:Subject>Water the plants</t:Subject>"
    "<t:Recurrence><t:DailyRegeneration><t:Interval>3</t:Interval></t:DailyRegeneration>"
    "<t:NoEndRecurrence><t:StartDate>2026-01-05</t:StartDate></t:NoEndRecurrence></t:Recurrence></t:Task>"
)


def run(world: ExchangeWorld, page: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Three passes (the first pull, changes on both sides, a quiet one) with pages of ``page`` items;
    what a user can see of them, and the GetItem requests of the first pass."""
    assert world.server is not None
    server = world.server
    monkeypatch.setattr(runner, "PAGE_SIZE", page)
    outlook: Outlook = world.bind(past_days=30, future_days=365)
    at = {i: soon(1 + i, 9) for i in range(N)}
    made = [outlook.create_event(f"Visit #{i}", at[i], at[i] + timedelta(hours=1)) for i in range(N)]
    server.put_item(OWNER, "tasks", UNANCHORED)
    # The same meeting entered by hand on both sides before syncd ran: paired, not doubled.
    world.save(meeting("by-hand", f"Visit #{BY_HAND}", start=at[BY_HAND], end=at[BY_HAND] + timedelta(hours=1)),
               meeting("crm-only", "Only in the CRM", days=5))
    before_first_write: list[int] = []

    def progress(done: int, total: int) -> None:
        before_first_write.append(server.operations().count("GetItem"))

    start = len(server.operations())
    app = world.app()
    first = app.run_pass(app.config.binding("anna"), progress=progress)
    first_reads = server.operations()[start:].count("GetItem")

    outlook.delete(made[DELETED])
    outlook.edit(made[EDITED], Subject="Visit (moved to the afternoon)")
    crm_edited = next(a for a in world.all() if a.subject == f"Visit #{CRM_EDITED}")
    world.save(crm_edited.replace(subject="Visit (agenda from the CRM)"))
    second = world.sync()
    third = world.sync()

    activities = world.all()
    return {
        "counts": [dict(r.counts) for r in (first, second, third)],
        "results": [r.result for r in (first, second, third)],
        # An ItemId is the server's; the reason is what counts.
        "errors": sorted(re.sub(r"[A-Za-z0-9+/]{24,}=*", "<id>", e) for e in first.errors + second.errors),
        "crm": sorted((a.subject, a.kind, a.owner) for a in activities),
        "linked": len(world.sql("SELECT activity_id FROM sync_links WHERE binding = 'anna'")),
        "outlook": sorted(str(s) for s in outlook.subjects()),
        "first_reads": first_reads,
        "reads_before_first_write": before_first_write[0] - server.operations()[:start].count("GetItem"),
    }


def test_an_exchange_pull_in_pages_gives_what_one_page_gives(
    tmp_path: Path, ews: EwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "paged").mkdir()
    (tmp_path / "whole").mkdir()
    paged = run(ExchangeWorld(tmp_path / "paged", None, None, server=ews), PAGE, monkeypatch)  # type: ignore[arg-type]
    # The second world binds Anna's mailbox again: emptied first.
    for folder in ("calendar", "tasks"):
        for item in ews.items(OWNER, folder):
            ews.delete_item(item.id)
    whole = run(ExchangeWorld(tmp_path / "whole", None, None, server=ews), 10_000, monkeypatch)  # type: ignore[arg-type]

    # A page is read with one GetItem (and written) before the next is read: pages of 5 over the 22
    # listed items cost 5 GetItems where one page costs 1, and the first write comes before the last read.
    pages = -(-(N + 1) // PAGE)
    assert (paged.pop("first_reads"), whole.pop("first_reads")) == (pages, 1)
    assert paged.pop("reads_before_first_write") < pages
    whole.pop("reads_before_first_write")
    assert paged == whole

    assert paged["results"] == ["ok", "ok", "ok"]
    first, second, third = paged["counts"]
    assert first["crm_created"] == N - 1 and first["paired"] == 1 and first["remote_created"] == 1
    assert first["errors"] == 1
    # Refused in the first pass and in the second, which retries it.
    assert paged["errors"] == ["remote:<id>: unreadable calendar item: <id>: Recurrence: a recurring task without "
                               "start or due date"] * 2
    assert {k: second[k] for k in ("crm_deleted", "crm_updated", "remote_updated")} == dict.fromkeys(
        ("crm_deleted", "crm_updated", "remote_updated"), 1)
    assert not third, third
    subjects = [s for s, _, _ in paged["crm"]]
    assert len(subjects) == len(set(subjects)) == N
    assert f"Visit #{DELETED}" not in subjects and "Only in the CRM" in subjects
    assert "Visit (moved to the afternoon)" in subjects and "Visit (agenda from the CRM)" in paged["outlook"]
    assert all(owner == OWNER and kind == Kind.APPOINTMENT for _, kind, owner in paged["crm"])
    assert paged["linked"] == N
