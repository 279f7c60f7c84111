"""Copies of the items a pass will update, read in batches just before the writes (issue 14).

An update writes over the item as the server holds it, so that what other clients stored on it
survives; without a copy from the change feed it reads the item first. Told by the engine which items
those are (:class:`~syncd.connectors.base.Prefetching`), a connector reads them with
:class:`BatchedReads` instead (CalDAV with calendar-multiget, Exchange with GetItem, Graph with
``$batch``): a batch at a time as the updates reach them, so memory holds one batch and a copy is
read shortly before its write.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Generic, Protocol, TypeVar

from syncd.connectors.base import RemoteItem
from syncd.errors import AuthError, RemoteError
from syncd.logging import get_logger

log = get_logger("syncd.connectors")


class _Copy(Protocol):
    @property
    def etag(self) -> str | None: ...


Copy = TypeVar("Copy", bound=_Copy)


def _anywhere(_a: str, _b: str) -> bool:
    return True


def ref_of(item: RemoteItem) -> str:
    return item.ref


class BatchedReads(Generic[Copy]):
    """The first update that needs a copy reads it with the next ``size`` - 1 expected items that can
    be read ``together`` with it (CalDAV: of its collection), in one call of ``read`` (which leaves out
    what it could not read; ``ref_of`` names what it brought). A copy is handed out once (written over,
    it is stale) and only at the version the engine decided on (compared with ``same``); what the
    batch did not bring, or a batch that failed short of refusing the credentials, costs that update
    the read it made without it, so nothing here weakens an update."""

    def __init__(
        self,
        size: int,
        read: Callable[[Sequence[str]], Iterable[Copy]],
        ref_of: Callable[[Copy], str],
        *,
        together: Callable[[str, str], bool] = _anywhere,
        same: Callable[[str, str], bool] = operator.eq,
    ) -> None:
        self._size = size
        self._read = read
        self._ref_of = ref_of
        self._together = together
        self._same = same
        self._expected: dict[str, None] = {}
        self._held: dict[str, Copy] = {}

    def expect(self, refs: Iterable[str]) -> None:
        """Forget what was expected and read; expect these refs instead."""
        self._expected = dict.fromkeys(refs)
        self._held = {}

    def take(self, ref: str, etag: str | None) -> Copy | None:
        """The copy of ``ref`` at ``etag`` (``None``: as read), reading its batch first if it is due."""
        if ref in self._expected:
            more = (r for r in self._expected if r != ref and self._together(ref, r))
            batch = [ref, *islice(more, self._size - 1)]
            for member in batch:
                del self._expected[member]
            wanted = set(batch)
            # The last batch's copies that no update took (an item replaced instead) go: one batch in
            # memory. Updates come in the order expected, so no later update wants them.
            self._held = {r: copy for r, copy in self._held.items() if not self._together(ref, r)}
            try:
                self._held.update((self._ref_of(c), c) for c in self._read(batch) if self._ref_of(c) in wanted)
            except AuthError:
                raise
            except RemoteError as exc:
                # Perhaps the batch itself (its size, one item in it): each item read on its own may pass.
                log.warning("a batched read of items to update failed; each is read on its own",
                            items=len(batch), error=str(exc))
        held = self._held.pop(ref, None)
        if held is None or (etag is not None and (held.etag is None or not self._same(held.etag, etag))):
            return None
        return held
