"""A large pull's items are parsed in worker processes (``syncd.connectors.parse_pool``). What a user
sees must not depend on where an item was parsed: the same activities, the same refusals with the same
reasons, the same hidden-field bookkeeping, internal errors logged with their traceback in syncd's own
log, and a worker that dies costing nothing but time."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from ics_resources import CORPUS, resources

from syncd import logging as syncd_logging
from syncd.connectors.base import RemoteItem, read_isolated
from syncd.connectors.caldav_collection import RawItem
from syncd.connectors.caldav_item import parse_item
from syncd.connectors import parse_pool
from syncd.connectors.parse_pool import parse_pages
from syncd.mapping.context import MappingContext
from syncd.model import Activity, CrmUser, Directory, ParticipantKind

OWNER = CrmUser("owner@example.com", "Owner", "Europe/Amsterdam")
# The CRM's people go to the workers with the context: an attendee who is a CRM contact is one there.
CTX = MappingContext(owner=OWNER, directory=Directory(contacts={"jan@klant.nl": "Jan"}))


def _corpus() -> list[RawItem]:
    return [
        RawItem(f"/cal/{path.parent.name}/{name}", f'"{n}"', body)
        for n, (path, (name, body)) in enumerate(
            (path, resource) for path in sorted(CORPUS.rglob("*.ics")) for resource in resources(path)
        )
    ]


def _shown(item: RemoteItem, crm: Activity) -> dict[str, bool]:
    return {name: agrees(crm) for name, agrees in item.uncarried.shown.items()}


def test_the_corpus_reads_the_same_in_worker_processes() -> None:
    raws = _corpus()
    assert len(raws) > 300
    here = [parse_item(raw, CTX) for raw in raws]
    pages = [raws[at : at + 97] for at in range(0, len(raws), 97)]
    there = [item for page in parse_pages(pages, parse_item, CTX, min_items=1, workers=2, steal=False)
             for item in page]

    assert [i.ref for i in there] == [i.ref for i in here]
    for a, b in zip(here, there, strict=True):
        assert (b.etag, b.uid, b.crm_id, b.error, b.raw) == (a.etag, a.uid, a.crm_id, a.error, a.raw), a.ref
        assert (b.activity, b.modified_at, b.categories) == (a.activity, a.modified_at, a.categories), a.ref
        assert (b.uncarried.fields, b.uncarried.kinds) == (a.uncarried.fields, a.uncarried.kinds), a.ref
        if a.activity is not None:
            # The hidden-field tests answer alike for the item's own values and for a CRM that moved on.
            other = replace(a.activity, status="done", priority="high", type="Visit", direction=None)
            assert _shown(b, a.activity) == _shown(a, a.activity), a.ref
            assert _shown(b, other) == _shown(a, other), a.ref
    assert sum(i.error is not None for i in there) > 10  # the corpus's refusals came through as refusals


def _event(uid: str, attendee: str = "") -> bytes:
    at = datetime(2026, 12, 1, 9, tzinfo=UTC) + timedelta(hours=len(uid))
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Phone//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{at:%Y%m%dT%H%M%SZ}\r\nDURATION:PT1H\r\n"
        f"SUMMARY:Visit {uid}\r\n{attendee}END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def test_a_crm_contact_is_known_in_the_workers() -> None:
    raws = [RawItem(f"/cal/{i}.ics", None, _event(f"e{i}", "ATTENDEE;CN=Jan:mailto:jan@klant.nl\r\n")) for i in range(6)]
    items = next(parse_pages([raws], parse_item, CTX, min_items=1, workers=1, steal=False))
    assert [p.kind for i in items for p in i.activity.participants if p.email == "jan@klant.nl"] == [
        ParticipantKind.CONTACT
    ] * 6


# Parse functions for the workers: module-level, so that a spawned process finds them by name.


def _where(raw: RawItem, ctx: object) -> RemoteItem:
    """Records the process that parsed the item, in its etag."""
    return RemoteItem(ref=raw.path, etag=str(os.getpid()), uid=None, crm_id=None, activity=None)


def _fails_on_boom(raw: RawItem, ctx: MappingContext) -> RemoteItem:
    def parse() -> RemoteItem:
        if b"boom" in raw.data:
            raise RuntimeError("the mapping tripped over boom")
        return parse_item(raw, ctx)

    return read_isolated(raw.path, raw.etag, parse)


def _dies_on_crash(raw: RawItem, ctx: MappingContext) -> RemoteItem:
    import multiprocessing

    if b"crash" in raw.data and multiprocessing.parent_process() is not None:
        os._exit(3)  # a worker killed mid-chunk (the OOM killer, a segfault in a C extension)
    return parse_item(raw, ctx)


def _slow_there(raw: RawItem, ctx: object) -> RemoteItem:
    import multiprocessing
    import time

    if multiprocessing.parent_process() is not None:
        time.sleep(0.05)
    return _where(raw, ctx)


def test_the_caller_parses_what_no_worker_has_begun_instead_of_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker slower than the caller (a pull's parse against its store writes) does not set the
    pace: when the caller asks for a page, the chunks no worker has begun are parsed in the caller,
    from the page's end, and the page still comes out whole and in order."""
    monkeypatch.setattr(parse_pool, "CHUNK", 5)
    raws = [RawItem(f"/p/{i}", None, b"") for i in range(30)]
    (page,) = parse_pages([raws], _slow_there, None, min_items=1, workers=1)
    assert [i.ref for i in page] == [r.path for r in raws]
    by_chunk = [{i.etag for i in page[at : at + 5]} for at in range(0, 30, 5)]
    assert all(len(chunk) == 1 for chunk in by_chunk)  # a chunk is parsed whole on one side
    # The pool hands a worker two chunks ahead, or three once one is begun: the tail was parsed here.
    here = [chunk == {str(os.getpid())} for chunk in by_chunk]
    assert here[-3:] == [True] * 3 and here == sorted(here), by_chunk


def test_small_pages_are_parsed_here_and_large_ones_elsewhere() -> None:
    small = [[RawItem(f"/s/{p}-{i}", None, b"") for i in range(5)] for p in range(3)]
    assert {i.etag for page in parse_pages(small, _where, None, min_items=10) for i in page} == {str(os.getpid())}

    # On one core (no worker to spare) even a large page is parsed here.
    large = [[RawItem(f"/l/{i}", None, b"") for i in range(12)]]
    assert {i.etag for page in parse_pages(large, _where, None, min_items=10, workers=0) for i in page} == {
        str(os.getpid())
    }

    mixed = [small[0], [RawItem(f"/l/{i}", None, b"") for i in range(12)], small[1]]
    pages = list(parse_pages(mixed, _where, None, min_items=10, workers=1, steal=False))
    assert [[i.ref for i in page] for page in pages] == [[r.path for r in page] for page in mixed]
    assert {i.etag for i in pages[0]} == {str(os.getpid())}
    # From the first large page on, every page goes to the worker.
    assert len({i.etag for i in pages[1] + pages[2]}) == 1
    assert pages[1][0].etag != str(os.getpid())


def _heavy_loaded(raw: RawItem, ctx: MappingContext) -> RemoteItem:
    import sys

    assert ctx.options.status_target("done").ical_todo == "COMPLETED"  # the options did arrive
    loaded = " ".join(sorted(m for m in ("rich", "pydantic") if sys.modules.get(m)))
    return RemoteItem(raw.path, loaded, None, None, None)


def test_a_worker_loads_neither_rich_nor_pydantic() -> None:
    """Memory every worker holds: structlog imports rich when it is installed (it is, in this
    environment, as in many), and a worker keeps it out as syncd keeps it out of its own process; the
    mapping options every task carries unpickle without pydantic."""
    page = [RawItem(f"/r/{i}", None, b"") for i in range(3)]
    assert {i.etag for i in next(parse_pages([page], _heavy_loaded, CTX, min_items=1, workers=1, steal=False))} == {""}


@pytest.fixture
def log_lines() -> Callable[[], list[dict]]:
    """syncd's log as JSON lines, as ``syncd`` writes it."""
    stream = io.StringIO()
    syncd_logging.configure(level="info", fmt="json", stream=stream)
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


def test_an_internal_error_in_a_worker_is_the_items_and_is_logged_with_its_traceback_here(log_lines: Callable[[], list[dict]]) -> None:
    raws = [RawItem(f"/cal/{i}.ics", f'"{i}"', _event(f"e{i}", "X-NOTE:boom\r\n" if i == 3 else "")) for i in range(8)]
    with structlog.contextvars.bound_contextvars(binding="anna"):
        pages = parse_pages([raws], _fails_on_boom, CTX, min_items=1, workers=1, steal=False)
        items = [i for page in pages for i in page]
    assert [i.error is None for i in items] == [i != 3 for i in range(8)]
    assert items[3].error == "/cal/3.ics: internal error while reading it: RuntimeError: the mapping tripped over boom"
    assert items[3].activity is None and items[3].etag == '"3"'
    failures = [line for line in log_lines() if line["event"] == "calendar item failed with an internal error"]
    assert len(failures) == 1, log_lines()
    (failure,) = failures
    # Replayed in this process: the pass's context, this log's format, the worker's traceback.
    assert failure["binding"] == "anna" and failure["item"] == "/cal/3.ics" and failure["level"] == "error"
    assert "Traceback" in failure["exception"] and "the mapping tripped over boom" in failure["exception"]


def test_a_worker_that_dies_costs_only_time(log_lines: Callable[[], list[dict]]) -> None:
    raws = [RawItem(f"/cal/{i}.ics", None, _event(f"e{i}", "X-NOTE:crash\r\n" if i == 60 else "")) for i in range(150)]
    pages = [raws[:75], raws[75:]]
    items = [i for page in parse_pages(pages, _dies_on_crash, CTX, min_items=1, workers=1, steal=False) for i in page]
    assert [i.ref for i in items] == [r.path for r in raws]
    assert all(i.error is None and i.activity is not None for i in items)
    assert [i.activity.subject for i in items][60] == "Visit e60"
    warnings = [line for line in log_lines() if line["event"].startswith("parsing in worker processes failed")]
    assert len(warnings) == 1, log_lines()


def test_without_workers_the_pull_is_parsed_here(log_lines: Callable[[], list[dict]]) -> None:
    """A context that cannot go to a worker (or a machine without the semaphores a pool needs) parses
    in the caller's thread, with one warning, not a failed pass."""
    pages = [[RawItem(f"/p/{p}-{i}", None, b"") for i in range(12)] for p in range(3)]
    parsed = list(parse_pages(pages, _where, lambda: "no pickle", min_items=10, workers=1))
    assert [[i.ref for i in page] for page in parsed] == [[r.path for r in page] for page in pages]
    assert {i.etag for page in parsed for i in page} == {str(os.getpid())}
    warnings = [line for line in log_lines() if line["event"].startswith("parsing in worker processes failed")]
    assert len(warnings) == 1 and "pickle" in warnings[0]["error"], log_lines()


def test_workers_started_ahead_serve_the_pull_and_end_with_it() -> None:
    import multiprocessing

    from syncd.connectors.parse_pool import reserve

    quick = reserve(workers=1, after=30)
    quick.release()  # a small calendar's listing ends before the workers would start: none does
    assert multiprocessing.active_children() == []

    ahead = reserve(workers=1, after=0)
    pages = [[RawItem(f"/p/{p}-{i}", None, b"") for i in range(12)] for p in range(2)]
    parsed = list(parse_pages(pages, _where, None, min_items=10, workers=1, reserved=ahead, steal=False))
    assert {i.etag for page in parsed for i in page} != {str(os.getpid())}
    assert multiprocessing.active_children() == []  # ended with the pull that used them

    unused = reserve(workers=1, after=0)
    small = list(parse_pages([pages[0][:3]], _where, None, min_items=10, workers=1, reserved=unused))
    assert {i.etag for page in small for i in page} == {str(os.getpid())}
    assert multiprocessing.active_children() == []


_KILLED_CALLER = """
import os, sys, time
from syncd.connectors.parse_pool import reserve
held = reserve(workers=1, after=0)
import multiprocessing
while not multiprocessing.active_children():
    time.sleep(0.05)
print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
time.sleep(60)
"""


def test_a_killed_caller_leaves_no_worker_behind() -> None:
    """A syncd killed outright (SIGKILL, the OOM killer) cannot end its workers: they end themselves."""
    import signal
    import subprocess
    import sys
    import time

    caller = subprocess.Popen([sys.executable, "-c", _KILLED_CALLER], stdout=subprocess.PIPE, text=True)
    assert caller.stdout is not None
    pids = [int(pid) for pid in caller.stdout.readline().split()]
    assert pids
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in pids if _running(pid)]
    assert alive == [], "workers outlived their killed caller"


def _running(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; whoever inherited it reaps it
