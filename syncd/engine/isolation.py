"""Per-item isolation: the one place that decides whether a failure belongs to one item or to the
whole binding.

Every per-item step of a pass (load from the store, scope and window, fingerprint, decide, merge,
write, link) runs under :meth:`Isolation.guard`. What concerns the whole binding (the calendar
unreachable or refusing the credentials, the store failing, the mass-deletion guard) propagates and
fails the pass; anything else is recorded against that item with its reason and the pass goes on.
An exception syncd did not raise on purpose is a bug: it is logged with its traceback at error level,
and still costs only that item.

The connectors apply the same rule to parsing (a calendar item that cannot be read becomes a
:class:`~syncd.connectors.base.RemoteItem` with an ``error``), so nothing one item holds reaches the
pass as an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.errors import RemoteError, SafetyStop, SyncdError
from syncd.logging import get_logger, scrub_text

log = get_logger("syncd.engine")

#: Failures of the whole binding; the store's own are recognised by the store (``store_failure``).
BINDING_FAILURES: tuple[type[BaseException], ...] = (RemoteError, SafetyStop)

#: An item in error is looked at again at the next pass, then after 1, 2, 4, ... minutes, at most
#: every 6 hours, unless either side changes it first (the change feeds bring it back at once). The
#: back-off keeps a permanently broken item from costing a request on every pass of a quiet binding.
FIRST_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class ItemFault:
    """Why one item failed in this pass."""

    key: str
    step: str
    reason: str
    bug: bool = False


def next_attempt(failures: int, last_at: datetime) -> datetime:
    """When an item that failed ``failures`` passes in a row is tried again without a change."""
    if failures <= 1:
        return last_at
    return last_at + min(FIRST_BACKOFF * 2 ** min(failures - 2, 20), MAX_BACKOFF)


class Isolation:
    """Collects the faults of one pass; ``store_failure`` tells the store's outages from one bad row."""

    def __init__(self, binding: str, store_failure: Callable[[BaseException], bool]) -> None:
        self.binding = binding
        self.store_failure = store_failure
        self.faults: dict[str, ItemFault] = {}

    def binding_failure(self, exc: BaseException) -> bool:
        return isinstance(exc, BINDING_FAILURES) or not isinstance(exc, Exception) or self.store_failure(exc)

    def record(self, key: str, step: str, exc: BaseException) -> ItemFault:
        """Record ``exc`` against the item; re-raises what concerns the whole binding."""
        if self.binding_failure(exc):
            raise exc
        bug = not isinstance(exc, SyncdError)
        reason = str(exc) if not bug else f"internal error while {step}: {type(exc).__name__}: {exc}"
        if bug:
            # A bug, not bad data: the traceback is what a developer needs to fix it.
            log.error("item failed with an internal error", binding=self.binding, item=key, step=step,
                      exc_info=exc)
        # The reason is printed and stored for `syncd status`: no secret a message carries.
        fault = ItemFault(key, step, scrub_text(reason or type(exc).__name__), bug)
        self.faults.setdefault(key, fault)
        return fault

    def fail(self, key: str, step: str, reason: str) -> None:
        """An item refused for a reason found without an exception (an unreadable calendar item)."""
        self.faults.setdefault(key, ItemFault(key, step, scrub_text(reason)))

    @contextmanager
    def guard(self, key: str, step: str) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:  # noqa: BLE001 - the classification above is the point
            self.record(key, step, exc)

    def __contains__(self, key: str) -> bool:
        return key in self.faults
