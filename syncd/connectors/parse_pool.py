"""Parsing a large pull's calendar items in worker processes (issue 14).

A first pull of a big calendar spends about half of syncd's CPU parsing iCalendar, in Python, where
the GIL keeps it on one core while the pass's own thread writes the items before it to the store.
From :data:`MIN_ITEMS` items in one page on, pages are parsed in worker processes instead, a page
ahead of the one the engine settles: the store writes of page *k* run beside the parse of page *k+1*
(and the read of page *k+2*, :mod:`syncd.connectors.read_ahead`). When the caller comes for a page
whose workers are not through, it parses the last chunks they have not begun itself rather than
wait, so neither side idles while the other is the slower one. Smaller pages, the daemon's usual passes, are
parsed in the caller's thread: starting a worker costs about half a second.

What stays as it was:

- Every item still goes through the connector's own parse with its per-item isolation
  (:func:`~syncd.connectors.base.read_isolated`); a refused item comes back with its reason.
- Log events a worker emits (an internal error's traceback) are replayed in the caller's thread, so
  they carry the pass's context and go through its redaction and format.
- Pages come out in order, each item where it was.
- A worker that cannot do its part (killed, out of memory, a result that does not pickle) costs
  nothing but time: its chunk, and every page after it, is parsed in the caller's thread, with one
  warning.

Workers are *spawned*, never forked: the daemon runs threads (the scheduler, leases, read-ahead), and
a fork copies their locks in whatever state they are. One pool serves the whole process (the daemon's
concurrent passes share it) and is shut down when the last pass using it ends, so an idle daemon
keeps no worker.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from syncd.connectors import parse_boot
from syncd.logging import get_logger

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing.process import BaseProcess

log = get_logger("syncd.connectors.parse_pool")

Raw = TypeVar("Raw")
Item = TypeVar("Item")
Ctx = TypeVar("Ctx")

#: Items in one page from which a pull parses in worker processes. A worker's start (a Python and
#: the iCalendar mapping's imports) is about 0.5 s of CPU; parsing 200 items costs about as much.
MIN_ITEMS = 200
#: Items per task: small enough that the workers share a page evenly, large enough that a task's
#: round trip (the context's key, the pickled results) stays a small part of it.
CHUNK = 50


def _cores() -> int:
    """The cores this process may run on: its CPU affinity (a cpuset's), where the OS tells it."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Workers: the cores but one, for the pass's own thread; at most four (the store writes, on the
#: pass's thread, cannot keep more busy); none on one core, where a worker would add its start and
#: the copying of every item and take no time off.
WORKERS = max(0, min(4, _cores() - 1))


class _SharedPool:
    """The process's one pool of workers, started by its first user and shut down after its last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._executor: ProcessPoolExecutor | None = None

    def acquire(self, workers: int) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                self._executor = ProcessPoolExecutor(
                    max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=parse_boot.start
                )
            self._users += 1
            return self._executor

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users or self._executor is None:
                return
            executor, self._executor = self._executor, None
        executor.shutdown(wait=True, cancel_futures=True)


_POOL = _SharedPool()


class Reservation:
    """Workers started before the pull they will parse is known to be large: a first pull's listing
    (seconds of the server's time at thousands of items) hides their start. They start only once the
    listing has taken :data:`WARM_AFTER` seconds: a small calendar's (a new binding's, most of them)
    is answered before, and starts no process. Handed to :func:`parse_pages`, which uses the workers
    and ends the reservation; ended unused, it lets the pool go (:meth:`release` may be called any
    number of times)."""

    def __init__(self, workers: int, after: float) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._ended = False
        self._pool: ProcessPoolExecutor | None = None
        self._timer = threading.Timer(after, self._start)
        self._timer.daemon = True
        self._timer.start()

    def _start(self) -> None:
        with self._lock:
            if self._ended or self.workers < 1:
                return
            try:
                self._pool = _POOL.acquire(self.workers)
                for _ in range(self.workers):
                    self._pool.submit(_ready)
            except Exception as exc:  # noqa: BLE001 - no workers now: the pull tries again, or parses here
                log.debug("no parse workers started ahead of the pull", error=f"{type(exc).__name__}: {exc}")
        # The caller parses too, whenever it would wait for the workers (:meth:`_Parsing.finish`):
        # its mapping loads here, while the listing is still awaited, not at the first page.
        import syncd.mapping.ical  # noqa: F401

    def release(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._ended = True
            pool, self._pool = self._pool, None
        if pool is not None:
            _POOL.release()


#: Seconds a first pull's listing runs before the workers start (a listing of a few hundred items
#: takes about that long on a loopback Radicale; the workers cost about 0.5 s of CPU to start).
WARM_AFTER = 0.3


def reserve(workers: int | None = None, after: float | None = None) -> Reservation:
    """Start the workers soon, for a pull that may turn out large (see :class:`Reservation`)."""
    return Reservation(WORKERS if workers is None else workers, WARM_AFTER if after is None else after)


class _Page(Generic[Raw, Item]):
    """One page on its way: its raw items, and either their parse or the workers' tasks for it."""

    def __init__(self, raws: list[Raw], parsed: list[Item] | None = None,
                 tasks: list[Future[tuple[list[Item], list[dict[str, Any]]]]] | None = None) -> None:
        self.raws = raws
        self.parsed = parsed
        self.tasks = tasks or []


def parse_pages(
    raw_pages: Iterable[list[Raw]], parse: Callable[[Raw, Ctx], Item], ctx: Ctx,
    min_items: int | None = None, workers: int | None = None, reserved: Reservation | None = None,
    steal: bool = True,
) -> Generator[list[Item], None, None]:
    """``[parse(raw, ctx) for raw in page]`` for each page, in order; from the first page of at least
    ``min_items`` (:data:`MIN_ITEMS`) on, in ``workers`` (:data:`WORKERS`) processes, a page ahead
    (those of ``reserved`` if given: ended here), the caller parsing, when it asks for a page, the
    chunks of it no worker has begun (unless not ``steal``). ``parse`` must be a module-level
    function that never raises (it isolates its item), and ``ctx`` must pickle."""
    parsing = _Parsing(parse, ctx, MIN_ITEMS if min_items is None else min_items,
                       WORKERS if workers is None else workers, reserved, steal)
    pending: deque[_Page[Raw, Item]] = deque()
    try:
        for raws in raw_pages:
            pending.append(parsing.start(raws))
            # One page stays in the workers while the caller settles the one before it.
            while len(pending) > parsing.ahead:
                yield parsing.finish(pending.popleft())
        while pending:
            yield parsing.finish(pending.popleft())
    finally:
        for page in pending:
            for task in page.tasks:
                task.cancel()
        parsing.close()


class _Parsing(Generic[Raw, Item, Ctx]):
    """One pull's parse: in the caller's thread until a page is large enough, in the workers from then
    on, and in the caller's thread again for good once the workers fail it."""

    def __init__(self, parse: Callable[[Raw, Ctx], Item], ctx: Ctx, min_items: int, workers: int,
                 reserved: Reservation | None, steal: bool) -> None:
        self.parse, self.ctx, self.min_items, self.workers = parse, ctx, min_items, workers
        self.steal = steal
        self.reserved = reserved
        self.pool: ProcessPoolExecutor | None = None
        self.broken = False
        self.blob = self.key = b""

    @property
    def ahead(self) -> int:
        return 1 if self.pool is not None and not self.broken else 0

    def start(self, raws: list[Raw]) -> _Page[Raw, Item]:
        if self.pool is None and not self.broken and self.workers > 0 and len(raws) >= self.min_items:
            try:
                self.blob = pickle.dumps(self.ctx, protocol=pickle.HIGHEST_PROTOCOL)
                self.key = hashlib.blake2b(self.blob, digest_size=16).digest()
                self.pool = _POOL.acquire(self.workers)  # the reserved pool, when there is one
            except Exception as exc:  # noqa: BLE001 - no semaphores (a locked-down container), no fork
                self._fall_back(exc)
            else:
                log.debug("parsing the pull in worker processes", workers=self.workers, page=len(raws))
        if self.pool is not None and not self.broken:
            try:
                return _Page(raws, tasks=[
                    self.pool.submit(_parse_chunk, self.parse, self.key, self.blob, raws[at : at + CHUNK])
                    for at in range(0, len(raws), CHUNK)
                ])
            except Exception as exc:  # noqa: BLE001 - a pool another pass broke
                self._fall_back(exc)
        return _Page(raws, parsed=[self.parse(raw, self.ctx) for raw in raws])

    def finish(self, page: _Page[Raw, Item]) -> list[Item]:
        if page.parsed is not None:
            return page.parsed
        chunks = list(zip(range(0, len(page.raws), CHUNK), page.tasks, strict=True))
        done: dict[int, list[Item]] = {}
        for at, task in chunks:
            # Rather than wait for a chunk, parse here the page's last one no worker has begun (its
            # task cancelled): whichever side is slower, the pull's parse or its store writes, would
            # set the pace while the other idles. Never more: a caller that parses while the workers
            # are ahead of it only slows the pull.
            while self.steal and at not in done and not task.done():
                stolen = next((later for later, other in reversed(chunks)
                               if later >= at and later not in done and other.cancel()), None)
                if stolen is None:
                    break
                done[stolen] = [self.parse(raw, self.ctx) for raw in page.raws[stolen : stolen + CHUNK]]
            if at in done:
                continue
            try:
                parsed, events = task.result()
            except Exception as exc:  # noqa: BLE001 - any failure of the worker machinery, never of an item
                self._fall_back(exc)
                parsed, events = [self.parse(raw, self.ctx) for raw in page.raws[at : at + CHUNK]], []
            _replay(events)
            done[at] = parsed
        return [item for at, _ in chunks for item in done[at]]

    def _fall_back(self, exc: Exception) -> None:
        if not self.broken:
            log.warning("parsing in worker processes failed; parsing in this process",
                        error=f"{type(exc).__name__}: {exc}")
        self.broken = True

    def close(self) -> None:
        if self.pool is not None:
            self.pool = None
            _POOL.release()
        if self.reserved is not None:
            self.reserved.release()


# --- in the worker ----------------------------------------------------------------------------------

_contexts: dict[bytes, Any] = {}
_events: list[dict[str, Any]] = []


def worker_start() -> None:
    """Log events are kept for the caller to replay, never printed here; the mapping is imported
    while the caller still waits for its first page. Ctrl-C in a terminal reaches the whole process
    group: the caller decides what it means, and ends the workers (SIGTERM stays theirs: the pool
    ends a broken pool's workers with it; one that dies is parsed for in the caller)."""
    import multiprocessing
    import signal

    import structlog

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A caller killed outright (SIGKILL, the OOM killer) never shuts its pool down, and a worker
    # blocked on its task queue holds that queue's write end itself, so it would wait forever.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="syncd-parent-watch", daemon=True).start()

    def keep(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
        _events.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(
        processors=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level,
                    structlog.processors.format_exc_info, keep],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
    )
    root = logging.getLogger()
    root.handlers[:] = [_KeepRecords()]
    root.setLevel(logging.WARNING)
    import syncd.mapping.ical  # noqa: F401 - loaded before the first task needs it


def _exit_with(parent: BaseProcess) -> None:
    parent.join()  # returns when the caller's process is gone
    os._exit(0)


class _KeepRecords(logging.Handler):
    """A library's own log record (icalendar, dateutil), kept like syncd's events."""

    def emit(self, record: logging.LogRecord) -> None:
        _events.append({"event": record.getMessage(), "level": record.levelname.lower(), "logger": record.name,
                        **({"exception": self.format(record).partition("\n")[2]} if record.exc_info else {})})


def _ready() -> None:
    """A first task, so that the pool starts its workers (it starts them as tasks arrive)."""


def _parse_chunk(
    parse: Callable[[Raw, Ctx], Item], key: bytes, blob: bytes, raws: list[Raw]
) -> tuple[list[Item], list[dict[str, Any]]]:
    ctx = _contexts.get(key)
    if ctx is None:
        # A pass's context is unpickled once per worker (its directory may hold the CRM's people).
        if len(_contexts) >= 8:
            _contexts.clear()
        ctx = _contexts[key] = pickle.loads(blob)  # its own parent process wrote it
    _events.clear()
    parsed = [parse(raw, ctx) for raw in raws]
    return parsed, list(_events)


# --- back in the caller -------------------------------------------------------------------------------


def _replay(events: list[dict[str, Any]]) -> None:
    for event in events:
        fields = dict(event)
        level = logging.getLevelName(str(fields.pop("level", "info")).upper())
        name = fields.pop("logger", None)
        message = fields.pop("event", "")
        get_logger(name).log(level if isinstance(level, int) else logging.INFO, message, **fields)
