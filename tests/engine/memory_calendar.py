"""An in-memory calendar behind the Connector contract, for state-machine tests of the engine.

Servers are tested for real elsewhere (Radicale, the EWS test server); here the point is to drive
the engine through thousands of interleavings quickly. It keeps the contract's promises the way a
strict server does: etags change on every write, a change feed with tokens, conditional writes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from syncd.connectors.base import RemoteChanges, RemoteItem, WriteResult
from syncd.errors import AlreadyExists, NotFound, PreconditionFailed, RemoteError
from syncd.mapping.identity import activity_id_for_uid, uid_for
from syncd.model import Activity, Kind


@dataclass
class Stored:
    uid: str
    crm_id: str | None
    etag: str
    activity: Activity
    version: int


class MemoryCalendar:
    def __init__(self) -> None:
        self.items: dict[str, Stored] = {}
        self.tombstones: dict[str, int] = {}
        self._clock = itertools.count(1)
        self.fail_at: int | None = None
        """Fail the n-th write from now (0 = the next): the server dies, or its answer is lost."""
        self.answer_lost = False

    def _write(self, do):  # noqa: ANN001, ANN202
        """Run one write, or fail it the way a dying server or a dropped connection does."""
        if self.fail_at is None or self.fail_at > 0:
            if self.fail_at is not None:
                self.fail_at -= 1
            return do()
        self.fail_at = None
        if self.answer_lost:
            do()  # the server did it; the client never hears
        raise RemoteError("connection dropped")

    # -- what a user does in the calendar ----------------------------------------------------------

    def put(self, ref: str, uid: str, crm_id: str | None, activity: Activity) -> str:
        version = next(self._clock)
        self.items[ref] = Stored(uid, crm_id, f'"{version}"', activity, version)
        self.tombstones.pop(ref, None)
        return f'"{version}"'

    def remove(self, ref: str) -> None:
        if self.items.pop(ref, None) is not None:
            self.tombstones[ref] = next(self._clock)

    # -- the connector ----------------------------------------------------------------------------

    def _item(self, ref: str) -> RemoteItem:
        s = self.items[ref]
        return RemoteItem(ref, s.etag, s.uid, s.crm_id, s.activity.replace(id=s.crm_id or activity_id_for_uid(s.uid)))

    def changes(self, state: str | None, known: Mapping[str, str | None]) -> RemoteChanges:
        since = int(state) if state else 0
        now = str(next(self._clock))
        if since == 0:
            changed = [r for r in self.items if known.get(r) != self.items[r].etag]
            deleted = [r for r in known if r not in self.items]
        else:
            changed = [r for r, s in self.items.items() if s.version > since and known.get(r) != s.etag]
            deleted = [r for r, v in self.tombstones.items() if v > since and r in known]
        return RemoteChanges([self._item(r) for r in changed], deleted, now, len(self.items))

    def fetch(self, refs: Sequence[str]) -> list[RemoteItem]:
        return [self._item(r) for r in refs if r in self.items]

    def find(self, crm_id: str, kind: Kind) -> RemoteItem | None:
        ref = f"/{uid_for(crm_id)}.ics"
        return self._item(ref) if ref in self.items else None

    def create(self, activity: Activity) -> WriteResult:
        uid = uid_for(activity.id)
        ref = f"/{uid}.ics"
        if ref in self.items:
            raise AlreadyExists(ref)
        return self._write(lambda: WriteResult(ref, self.put(ref, uid, activity.id, activity)))

    def update(self, ref: str, etag: str | None, activity: Activity, raw: object = None) -> WriteResult:
        current = self.items.get(ref)
        if current is None:
            raise NotFound(ref)
        if etag is not None and etag != current.etag:
            raise PreconditionFailed(ref)
        return self._write(lambda: WriteResult(ref, self.put(ref, current.uid, current.crm_id or activity.id, activity)))

    def delete(self, ref: str, etag: str | None) -> None:
        current = self.items.get(ref)
        if current is None:
            return
        if etag is not None and etag != current.etag:
            raise PreconditionFailed(ref)
        self._write(lambda: self.remove(ref))

    def check(self) -> list[str]:
        return []

    location = "memory"

    def close(self) -> None:
        pass
