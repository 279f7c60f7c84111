"""Reading the next page of a pull while the engine works on the current one (issue 14).

A pull reads the calendar a page at a time (:class:`~syncd.connectors.base.Paging`); read one after
the other, each page's request waits for the server while syncd's own process idles, and the server
idles while syncd parses and writes the page. Here the next page's request runs in a thread while the
caller works on the page it was handed: the server's time (its own process, the machine's other
core) is hidden behind syncd's. Only the request runs there: what the connector does with its answer
(parsing each item, with per-item isolation) stays in the caller's thread, and with it every decision
and write of the pass.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Generator, Iterable
from itertools import chain, islice
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

Page = TypeVar("Page")
Read = TypeVar("Read")


def read_ahead(pages: Iterable[Page], read: Callable[[Page], Read]) -> Generator[Read, None, None]:
    """``read(page)`` for each page in order, the next page's read running while the caller works on
    the one it was handed.

    Failures come where a plain loop's would: a read's exception is raised when the caller asks for
    its page, after every page before it was handed out. A caller that stops early (its own failure,
    or ``close()``) waits for the read in flight to end, so no request outlives the pass or overlaps
    one the caller makes next (a connector that shares a connection also serializes its requests).
    A single page is read in the caller's thread."""
    remaining = iter(pages)
    head = list(islice(remaining, 2))
    if len(head) < 2:
        yield from map(read, head)
        return
    # Imported here: a pass that reads one page or none (most) starts no thread.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncd-read-ahead") as pool:

        def start(page: Page) -> Future[Read]:
            # The caller's logging context (binding, pass) goes with the request into the thread.
            return pool.submit(contextvars.copy_context().run, read, page)

        running = start(head[0])
        for page in chain(head[1:], remaining):
            done = running.result()
            running = start(page)
            yield done
        yield running.result()
