"""Item bodies that came with a calendar's listing, kept aside until the pass reads them.

A first pull reads every item of a calendar. Asked for in the listing itself (RFC 6578 lets a
sync-collection REPORT ask for any property, calendar-data included), the bodies cost the server
about what the listing alone costs it (Radicale, 5,000 events, paired runs: 2.90-3.11 s with them,
2.63-2.75 s without), where reading them afterwards took 2.45-3.02 s more in multigets. The engine still
reads a page at a time, so the bodies wait here: in memory up to :data:`IN_MEMORY` bytes, then in
an unnamed temporary file, so that a 50,000-item calendar's bodies do not stand in memory.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence

from syncd.connectors.caldav_collection import RawItem

#: Bytes of bodies held in memory before they go to the temporary file (about 10,000 phone events).
IN_MEMORY = 8 * 1024 * 1024


class BodySpool:
    """Bodies by path, each handed out once (:meth:`take`); one listing's (every :meth:`add` comes
    before the first :meth:`take`), dropped once all are taken or with :meth:`close`."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115 (closed by close())
        self._where: dict[str, tuple[int, int, str | None]] = {}
        # Filled by the listing, read from the read-ahead thread and, for a race, from the pass's.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._where)

    def add(self, path: str, etag: str | None, data: bytes) -> None:
        with self._lock:
            end = self._file.seek(0, 2)
            self._file.write(data)
            self._where[path] = (end, len(data), etag)

    def drop(self, path: str) -> None:
        """A later part of the listing says the item is gone."""
        with self._lock:
            self._where.pop(path, None)

    def take(self, paths: Sequence[str]) -> tuple[list[RawItem], list[str]]:
        """The items among ``paths`` held here (no longer held after), and the paths that are not."""
        found: list[RawItem] = []
        rest: list[str] = []
        with self._lock:
            for path in paths:
                place = self._where.pop(path, None)
                if place is None:
                    rest.append(path)
                    continue
                start, size, etag = place
                self._file.seek(start)
                found.append(RawItem(path, etag, self._file.read(size)))
            if not self._where:
                # Every body handed out: the file's disk space goes now, not at the next listing (a
                # daemon keeps its connector, and so this, until the binding's next pass).
                self._file.close()
        return found, rest

    def close(self) -> None:
        with self._lock:
            self._where.clear()
            self._file.close()
