"""A pass reads a binding's links without their merge bases (at 50,000 links the bases were most of a
pass's memory) and reads the bases of the items both sides hold when it plans them, one query a page.
Edits on both sides of items spread over several pages must still merge field by field, each against
its own item's base, on SQLite and on PostgreSQL; a pass with nothing to merge reads no base."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event
from world import World, master, meeting, uid

from syncd.engine import runner

N = 12
PAGE = 3
#: Edited on the phone (the location): three pages of the next pass's changed items.
PHONE_EDITED = (0, 2, 3, 5, 6, 8, 9, 11)
#: Of those, edited in the CRM too (the subject), in each page.
BOTH_EDITED = (2, 3, 8, 11)


def key(i: int) -> str:
    return f"lz{i:02d}"


@contextmanager
def base_reads() -> Iterator[list[str]]:
    """Statements that read merge bases from the links table, of every engine (each ``World.sync``
    builds its own App) while inside."""
    reads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        flat = " ".join(statement.split()).lower()
        if flat.startswith("select") and "sync_links.base" in flat:
            reads.append(flat)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield reads
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


@pytest.mark.parametrize("store", ["world", "pg_world"])
def test_edits_on_both_sides_merge_against_each_items_own_base(
    store: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    world: World = request.getfixturevalue(store)
    monkeypatch.setattr(runner, "PAGE_SIZE", PAGE)
    phone = world.bind(conflict="merge")
    # Every item has its own subject and location, so that a merge against another item's base (or
    # none) would take one side's value for both fields and lose the other side's edit.
    world.save(*(meeting(key(i), f"Visit #{i}", days=1 + i, location=f"Room {i}") for i in range(N)))
    assert world.sync().counts["remote_created"] == N

    for i in BOTH_EDITED:
        world.save(meeting(key(i), f"Visit #{i} (CRM)", days=1 + i, location=f"Room {i}"))
    for i in PHONE_EDITED:
        phone.edit(uid(key(i)), location=f"Hall {i}")
    with base_reads() as reads:
        report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["errors"] == 0, report.errors
    assert report.counts["crm_updated"] == len(PHONE_EDITED)
    assert report.counts["remote_updated"] == len(BOTH_EDITED)
    for i in range(N):
        subject = f"Visit #{i} (CRM)" if i in BOTH_EDITED else f"Visit #{i}"
        location = f"Hall {i}" if i in PHONE_EDITED else f"Room {i}"
        activity = world.get(key(i))
        assert activity is not None
        assert (activity.subject, activity.location) == (subject, location), i
        event_ = master(phone.get(uid(key(i)))[0])
        assert (str(event_["SUMMARY"]), str(event_["LOCATION"])) == (subject, location), i
    # The bases were read a page at a time, not an item at a time.
    assert 1 <= len(reads) <= -(-len(PHONE_EDITED) // PAGE), reads

    # The merge stored new bases: the next edit on both sides merges against them, and a pass with
    # nothing to merge reads no base at all.
    world.save(meeting(key(3), "Visit #3 (CRM 2)", days=4, location="Hall 3"))
    phone.edit(uid(key(3)), location="Hall 3b")
    with base_reads() as reads:
        assert world.sync().result == "ok"
        idle = world.sync()
    assert len(reads) == 1, reads
    assert idle.result == "ok" and sum(idle.counts.values()) == 0, dict(idle.counts)
    activity = world.get(key(3))
    assert activity is not None and (activity.subject, activity.location) == ("Visit #3 (CRM 2)", "Hall 3b")
