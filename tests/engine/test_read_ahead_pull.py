"""A pull reads the calendar's next page while it writes the current one (``syncd.connectors.read_ahead``).
What a user sees must not change with it: a server that fails a later page's request fails the pass
after the pages before it were written, as reading one page after the other did, and the next pass
brings the rest, with nothing twice."""

from __future__ import annotations

import threading
import time
from datetime import UTC, timedelta

import pytest
from phone_files import calendar_folder, phone_event
from radicale_server import Answer, FaultProxy, Seen, without_listed_bodies
from world import World, idle, soon

from syncd.connectors.read_ahead import read_ahead
from syncd.engine import runner

PAGE = 4
N = 14


def test_a_failed_read_of_a_later_page_fails_the_pass_after_the_pages_before_it(
    world: World, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "PAGE_SIZE", PAGE)
    phone = world.bind(past_days=30, future_days=365, remote={"timeout": 30})
    folder = calendar_folder(world, phone)
    start = soon(1, 9).astimezone(UTC)
    for i in range(N):
        at = start + timedelta(days=i)
        (folder / f"e{i:02d}.ics").write_bytes(phone_event(f"e{i:02d}", f"Visit #{i}", at))

    multigets: list[int] = []

    def third_multiget_fails(seen: Seen, answer: Answer) -> Answer:
        # A first pull's listing brings the bodies where the server sends them; this one does not.
        answer = without_listed_bodies(seen, answer)
        if seen.method == "REPORT" and b"calendar-multiget" in seen.body:
            multigets.append(1)
            if len(multigets) == 3:
                return Answer(500, [("Content-Type", "text/plain")], b"the disk is full")
        return answer

    proxy.rewrite = third_multiget_fails
    failed = world.sync()
    assert failed.result == "failed"
    assert "HTTP 500" in (failed.error or ""), failed.error
    # The two pages read before the failure are in the CRM, each item once; the page after the failed
    # one was never asked for (a read runs one page ahead, never past a failure).
    written = sorted(a.subject for a in world.all())
    assert written == sorted(f"Visit #{i}" for i in range(2 * PAGE)), written
    assert len(multigets) == 3

    proxy.rewrite = None
    again = world.sync()
    assert again.result == "ok", again.error
    assert again.counts["crm_created"] == N - 2 * PAGE
    subjects = [a.subject for a in world.all()]
    assert sorted(subjects) == sorted(f"Visit #{i}" for i in range(N))
    assert len(world.sql("SELECT activity_id FROM sync_links WHERE binding = 'anna'")) == N
    assert idle(world)


def test_reads_run_one_page_ahead_and_never_outlive_the_reader() -> None:
    started: list[int] = []
    ended: list[int] = []

    def read(page: int) -> int:
        started.append(page)
        if page == 2:
            time.sleep(0.2)  # still under way when the reader stops at page 1
        if page == 3:
            raise ValueError("page 3 cannot be read")
        ended.append(page)
        return page * 10

    pages = read_ahead([1, 2, 3, 4], read)
    assert next(pages) == 10
    pages.close()
    # The reader stopped while page 2 was read: closing waited for that read, and read nothing more.
    assert (started, ended) == ([1, 2], [1, 2])
    assert not [t for t in threading.enumerate() if t.name.startswith("syncd-read-ahead")]

    # A failed read is raised where its page is asked for, after the pages before it.
    started.clear()
    got: list[int] = []
    with pytest.raises(ValueError, match="page 3"):
        for value in read_ahead([1, 2, 3, 4], read):
            got.append(value)
    assert got == [10, 20] and started == [1, 2, 3]


def test_one_page_is_read_without_a_thread() -> None:
    threads: list[str] = []
    assert list(read_ahead([7], lambda page: threads.append(threading.current_thread().name) or page)) == [7]
    assert threads == [threading.current_thread().name]
    assert list(read_ahead([], lambda page: page)) == []
