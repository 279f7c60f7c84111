"""The paged-pull scenario of both Outlook test servers (EWS and Graph): pages of ``PAGE`` items must
give what one page of everything gives. Over three passes: an item the mapping refuses (a recurring
task whose series has no anchor), an appointment entered by hand on both sides, an activity only the
CRM has; then an Outlook deletion, an Outlook edit and a CRM edit in the middle of the next pass's
pages; then a quiet pass. Each test says what its server's reads cost."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from world import OWNER, World, meeting, soon

from syncd.engine import runner
from syncd.model import Kind

PAGE = 5
N = 21
BY_HAND, DELETED, EDITED, CRM_EDITED = 12, 10, 3, 18


@dataclass(frozen=True)
class Mailbox:
    """What differs between the two servers."""

    add_unanchored: Callable[[Any], None]
    """Puts the task the mapping refuses into the bound mailbox (given its ``Outlook``)."""
    mark: Callable[[], int]
    """How many requests the server has had so far."""
    reads: Callable[[int], int]
    """The reading requests (GetItem, ``$batch``) since a mark."""
    rename: Callable[[Any, Any, str], None]
    """An Outlook user's change of an item's subject."""
    ids: str
    """A pattern of the server's ids, which error messages carry: the reason is what counts."""
    after_first: Callable[[int], dict[str, Any]] = lambda since: {}
    """More figures of the first pass, from its mark."""


def three_passes(world: World, mailbox: Mailbox, page: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The three passes with pages of ``page`` items: what a user can see of them, and the reads of the
    first pass (``first_reads``, and ``reads_before_first_write``)."""
    monkeypatch.setattr(runner, "PAGE_SIZE", page)
    outlook: Any = world.bind(past_days=30, future_days=365)  # an Outlook of either server
    at = {i: soon(1 + i, 9) for i in range(N)}
    made = [outlook.create_event(f"Visit #{i}", at[i], at[i] + timedelta(hours=1)) for i in range(N)]
    mailbox.add_unanchored(outlook)
    # The same meeting entered by hand on both sides before syncd ran: paired, not doubled.
    world.save(meeting("by-hand", f"Visit #{BY_HAND}", start=at[BY_HAND], end=at[BY_HAND] + timedelta(hours=1)),
               meeting("crm-only", "Only in the CRM", days=5))
    start = mailbox.mark()
    before_first_write: list[int] = []

    def progress(done: int, total: int) -> None:
        before_first_write.append(mailbox.reads(start))

    app = world.app()
    first = app.run_pass(app.config.binding("anna"), progress=progress)
    first_reads = mailbox.reads(start)
    more = mailbox.after_first(start)

    outlook.delete(made[DELETED])
    mailbox.rename(outlook, made[EDITED], "Visit (moved to the afternoon)")
    crm_edited = next(a for a in world.all() if a.subject == f"Visit #{CRM_EDITED}")
    world.save(crm_edited.replace(subject="Visit (agenda from the CRM)"))
    second = world.sync()
    third = world.sync()

    activities = world.all()
    return {
        "counts": [dict(r.counts) for r in (first, second, third)],
        "results": [r.result for r in (first, second, third)],
        "errors": sorted(re.sub(mailbox.ids, "<id>", e) for e in first.errors + second.errors),
        "crm": sorted((a.subject, a.kind, a.owner) for a in activities),
        "linked": len(world.sql("SELECT activity_id FROM sync_links WHERE binding = 'anna'")),
        "outlook": sorted(str(s) for s in outlook.subjects()),
        "first_reads": first_reads,
        "reads_before_first_write": before_first_write[0],
        **more,
    }


def assert_pages_change_nothing(paged: dict[str, Any], whole: dict[str, Any], first_reads: tuple[int, int],
                                refused: str) -> None:
    """``paged`` and ``whole`` (:func:`three_passes` in pages, and in one) are the same and right: the
    first pass's reads are ``first_reads`` (paged, whole), a page is written before the last is read,
    and the refused task fails with ``refused`` in the two passes that try it."""
    pages = -(-(N + 1) // PAGE)
    assert (paged.pop("first_reads"), whole.pop("first_reads")) == first_reads
    assert paged.pop("reads_before_first_write") < pages
    whole.pop("reads_before_first_write")
    assert paged == whole

    assert paged["results"] == ["ok", "ok", "ok"]
    first, second, third = paged["counts"]
    assert first["crm_created"] == N - 1 and first["paired"] == 1 and first["remote_created"] == 1
    assert first["errors"] == 1
    # Refused in the first pass and in the second, which retries it.
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
