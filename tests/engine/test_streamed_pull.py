"""A pass reads the calendar's changed items a page at a time (``runner.PAGE_SIZE``) and gathers, plans
and writes each page before it reads the next, so that a pull of a whole calendar holds one page of
items, not the calendar. Over a real Radicale, pages of 7 must give what one page of everything gives,
with the cases that need the whole pass: an item the mapping refuses, two items with one UID, a
calendar item that pairs with an activity entered by hand, an activity only the CRM has, then a
deletion, a phone edit, a CRM edit and a moved item in the middle of the next pass's pages."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from radicale_server import USER, FaultProxy, without_listed_bodies
from world import OWNER, Phone, World, meeting, soon

from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.engine import runner
from syncd.model import Kind

PAGE = 7
N = 30
UNREADABLE, TWICE, BY_HAND, DELETED, EDITED, CRM_EDITED, MOVED = 4, 11, 17, 15, 3, 25, 22


def body(uid: str, subject: str, at: str, zone: str | None = None) -> bytes:
    start = f"DTSTART;TZID={zone}:{at}" if zone else f"DTSTART:{at}Z"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Phone//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{start}\r\nDURATION:PT1H\r\n"
        f"SUMMARY:{subject}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def folder_of(world: World, phone: Phone) -> Path:
    return world.radicale.storage_dir / "collections" / "collection-root" / USER / phone.calendar_url.split("/")[-2]


def summary(phone: Phone, href: str) -> str:
    status, data, _ = phone._request("GET", href)
    assert status == 200
    return str(icalendar.Calendar.from_ical(data).walk("VEVENT")[0]["SUMMARY"])


def run(world: World, proxy: FaultProxy, page: int, monkeypatch: pytest.MonkeyPatch, listed: bool) -> dict[str, Any]:
    """Three passes (the first pull, changes on both sides, a quiet one) with pages of ``page`` items;
    what a user can see of them. ``listed``: the server sends the bodies with the first pull's listing."""
    monkeypatch.setattr(runner, "PAGE_SIZE", page)
    proxy.rewrite = None if listed else without_listed_bodies
    phone = world.bind(past_days=30, future_days=365, remote={"timeout": 60})
    folder = folder_of(world, phone)
    start = soon(1, 9).astimezone(UTC)
    at = {i: start + timedelta(days=i) for i in range(N)}
    for i in range(N):
        (folder / f"e{i:02d}.ics").write_bytes(body(f"e{i:02d}", f"Visit #{i}", f"{at[i]:%Y%m%dT%H%M%S}"))
    # A zone nobody defines: the mapping refuses the item, which costs only that item.
    (folder / f"e{UNREADABLE:02d}.ics").write_bytes(
        body(f"e{UNREADABLE:02d}", "Where?", f"{at[UNREADABLE]:%Y%m%dT%H%M%S}", zone="Nowhere/Land"))
    # A second item with one UID (a server that lets a client store a copy under another name).
    (folder / "zz-copy.ics").write_bytes(body(f"e{TWICE:02d}", "Visit (copy)", f"{at[TWICE]:%Y%m%dT%H%M%S}"))
    # The same meeting entered by hand on both sides before syncd ran: paired, not doubled.
    world.save(meeting("by-hand", f"Visit #{BY_HAND}", start=at[BY_HAND], end=at[BY_HAND] + timedelta(hours=1)),
               meeting("crm-only", "Only in the CRM", days=5))
    reads: list[int] = []

    def progress(done: int, total: int) -> None:
        reads.append(proxy.count("REPORT"))

    proxy.reset()
    app = world.app()
    first = app.run_pass(app.config.binding("anna"), progress=progress)
    first_reads = proxy.count("REPORT")

    # The next pass's changes, spread over its pages.
    phone.delete(f"e{DELETED:02d}")
    phone.edit(f"e{EDITED:02d}", summary="Visit (moved to the afternoon)")
    crm_edited = next(a for a in world.all() if a.subject == f"Visit #{CRM_EDITED}")
    world.save(crm_edited.replace(subject="Visit (agenda from the CRM)"))
    # A client that renames the item: the same body under another name (the link follows it).
    moved, _ = phone.get(f"e{MOVED:02d}")
    phone.delete(f"e{MOVED:02d}")
    assert phone.put("a-moved", moved) == 201
    second = world.sync()
    third = world.sync()

    activities = world.all()
    links = world.sql("SELECT activity_id FROM sync_links WHERE binding = 'anna'")
    on_phone = [summary(phone, href) for href in phone.hrefs()]
    return {
        "counts": [dict(r.counts) for r in (first, second, third)],
        "results": [r.result for r in (first, second, third)],
        # The item's href in an error is the test's calendar's; its name and the reason are what count.
        "errors": sorted(re.sub(r"/[^ ]*/", "/", e) for e in first.errors + second.errors),
        "crm": sorted((a.subject, a.kind, a.owner) for a in activities),
        "linked": len(links),
        "phone": sorted(on_phone),
        "first_reads": first_reads,
        "reads_before_first_write": reads[0],
    }


@pytest.mark.parametrize("listed", [True, False], ids=["bodies-listed", "bodies-left-out"])
def test_a_pull_in_pages_gives_what_one_page_gives(
    tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, listed: bool
) -> None:
    (tmp_path / "paged").mkdir()
    (tmp_path / "whole").mkdir()
    paged = run(World(tmp_path / "paged", radicale, proxy), proxy, PAGE, monkeypatch, listed)
    whole = run(World(tmp_path / "whole", radicale, proxy), proxy, 10_000, monkeypatch, listed)

    if listed:
        # The first pull's one sync REPORT brings every body; one more reads the feed after syncd's
        # own writes to the calendar.
        for pull in (paged, whole):
            assert (pull.pop("reads_before_first_write"), pull.pop("first_reads")) == (1, 2)
    else:
        # Pages are read and written one after another: the first page is written after one sync
        # REPORT and its multiget, with at most the next page's multiget under way (read ahead while
        # the first is written), before the other pages are read; then one more sync REPORT.
        pages = -(-(N + 1) // PAGE)
        assert paged.pop("reads_before_first_write") in (2, 3)
        assert paged.pop("first_reads") == 1 + pages + 1
        assert (whole.pop("reads_before_first_write"), whole.pop("first_reads")) == (2, 3)
    assert paged == whole

    # And what one page gives is right: every readable item once, the refused one and the copy as
    # errors, the hand-made pair as one activity, the CRM's own activity on the phone.
    assert paged["results"] == ["ok", "ok", "ok"]
    first, second, third = paged["counts"]
    assert first["crm_created"] == N - 2 and first["paired"] == 1 and first["remote_created"] == 1
    assert first["errors"] == 2
    assert next(e for e in paged["errors"] if "Nowhere/Land" in e).startswith("remote:")
    assert any("already exists" in e for e in paged["errors"]), paged["errors"]
    # The deletion, both edits and the moved item (its link follows it), in one pass of pages.
    assert {k: second[k] for k in ("crm_deleted", "crm_updated", "remote_updated", "relinked")} == dict.fromkeys(
        ("crm_deleted", "crm_updated", "remote_updated", "relinked"), 1)
    assert not third, third
    subjects = [s for s, _, _ in paged["crm"]]
    assert len(subjects) == len(set(subjects)) == N - 1
    assert f"Visit #{DELETED}" not in subjects and f"Visit #{MOVED}" in subjects
    assert "Visit (moved to the afternoon)" in subjects and "Visit (agenda from the CRM)" in paged["phone"]
    assert all(owner == OWNER and kind == Kind.APPOINTMENT for _, kind, owner in paged["crm"])
    assert paged["linked"] == N - 1
