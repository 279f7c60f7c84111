"""The contract between the sync engine and a calendar system.

A connector speaks one protocol (CalDAV, EWS) and uses the mapping layer to turn that protocol's items
into :class:`syncd.model.Activity` objects and back. The engine sees only what is defined here.

Identity vocabulary (after vdirsyncer): ``ref`` is where an item lives on the remote side (a CalDAV
href, an EWS ItemId), ``etag`` a cheap change hint for it (an ETag, an EWS ChangeKey), ``uid`` the
iCalendar/EWS UID, and ``crm_id`` the CRM activity id syncd stored on the item (``None`` for an item
created in the calendar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from syncd.errors import ItemError, SyncdError
from syncd.logging import get_logger
from syncd.mapping.carried import NOTHING, Uncarried
from syncd.mapping.fingerprint import Fingerprints
from syncd.model import Activity, Kind

log = get_logger("syncd.connectors")


@dataclass(frozen=True, slots=True)
class RemoteItem:
    ref: str
    etag: str | None
    uid: str | None
    crm_id: str | None
    activity: Activity | None
    """The item as an activity; ``None`` when it could not be read (then ``error`` says why)."""
    error: str | None = None
    modified_at: datetime | None = None
    categories: tuple[str, ...] = ()
    raw: object = field(default=None, compare=False, repr=False)
    """Connector-private form of the item, handed back on update so unknown properties survive."""
    uncarried: Uncarried = field(default=NOTHING, compare=False, repr=False)
    """syncd's hidden data the item did not carry: the engine keeps the CRM's value for it."""
    fingerprints: Fingerprints | None = field(default=None, compare=False, repr=False)
    """Those of ``activity``, when the connector computed them where it parsed the item."""
    accepted: bool = field(default=False, compare=False, repr=False)
    """``activity`` passed the store's rules where it was read (every mapping's last step,
    :func:`syncd.mapping.accepted.storable`): stored as it is, it need not be checked again."""


class Parsed(Protocol):
    """What a mapping reads from one calendar item (``ParsedItem``, ``ParsedEwsItem``): an activity
    the store's rules accept (:func:`syncd.mapping.accepted.storable`, every mapping's last step)."""

    @property
    def uid(self) -> str | None: ...
    @property
    def crm_id(self) -> str | None: ...
    @property
    def activity(self) -> Activity: ...
    @property
    def modified_at(self) -> datetime | None: ...
    @property
    def categories(self) -> tuple[str, ...]: ...


def remote_item(ref: str, etag: str | None, parsed: Parsed, raw: object,
                fingerprints: Fingerprints | None = None) -> RemoteItem:
    return RemoteItem(
        ref=ref, etag=etag, uid=parsed.uid, crm_id=parsed.crm_id, activity=parsed.activity,
        modified_at=parsed.modified_at, categories=parsed.categories, raw=raw,
        # A mapping that reports nothing (an older one) carries everything it reads.
        uncarried=getattr(parsed, "uncarried", NOTHING), fingerprints=fingerprints, accepted=True,
    )


def item_failure(ref: str, exc: Exception, step: str) -> SyncdError:
    """What one item's exception inside a connector becomes: syncd's own errors and a value the
    mapping refused say what is wrong; anything else is a bug, logged with its traceback. Either way it
    costs that item only (the engine's per-item isolation, :mod:`syncd.engine.isolation`, for the
    steps a connector runs for many items at once)."""
    if isinstance(exc, SyncdError):
        return exc
    if isinstance(exc, ValueError):
        return ItemError(ref, None, str(exc))
    log.error("calendar item failed with an internal error", item=ref, step=step, exc_info=exc)
    return ItemError(ref, None, f"internal error while {step}: {type(exc).__name__}: {exc}")


def read_isolated(ref: str, etag: str | None, parse: Callable[[], RemoteItem], **unreadable: Any) -> RemoteItem:
    """One item's parse, which never raises: whatever a calendar holds costs only that item. A refused
    item comes back with ``activity=None`` and the reason in ``error`` (``unreadable`` fills in what
    the connector still knows of it); the engine records it against the item."""
    try:
        return parse()
    except Exception as exc:  # noqa: BLE001 - see item_failure
        reason = str(item_failure(ref, exc, "reading it"))
        fields: dict[str, Any] = {"uid": None, "crm_id": None, **unreadable}
        return RemoteItem(ref=ref, etag=etag, activity=None, error=reason, **fields)


@dataclass(frozen=True, slots=True)
class RemoteChanges:
    """What changed on the remote side since ``state``."""

    changed: list[RemoteItem]
    deleted: list[str]
    """Refs of items that are gone."""
    state: str
    """Opaque state to pass to the next :meth:`Connector.changes`, once this pass is committed."""
    total: int | None = None
    """How many items the remote collections hold now, when the connector knows it cheaply."""


@dataclass(frozen=True, slots=True)
class RemoteListing:
    """What changed on the remote side since ``state``, by ref alone: the changed items themselves
    are read later, a page at a time (:meth:`Connector.fetch`), so that a pass never holds them all."""

    changed: list[str]
    """Refs of the items to read (new or changed)."""
    deleted: list[str]
    state: str
    total: int | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    ref: str
    etag: str | None


@runtime_checkable
class Connector(Protocol):
    """One binding's remote side: an events collection and (optionally) a tasks collection.

    Errors: :class:`syncd.errors.RemoteError` (and :class:`~syncd.errors.AuthError`) when the remote
    side fails as a whole; :class:`~syncd.errors.PreconditionFailed`, :class:`~syncd.errors.AlreadyExists`,
    :class:`~syncd.errors.NotFound` and :class:`~syncd.errors.ItemError` for one item.
    """

    def changes(self, state: str | None, known: Mapping[str, str | None]) -> RemoteChanges:
        """Items changed or deleted since ``state`` (``None``: everything, a first or repaired sync).

        ``known`` maps the refs the engine has links for to their last-seen etag; a connector without a
        change feed compares against it. A stale or invalid ``state`` is handled inside (full re-read),
        never raised.
        """
        ...

    def fetch(self, refs: Sequence[str]) -> list[RemoteItem]:
        """Re-read these items (after a precondition failure); missing ones are left out."""
        ...

    def find(self, crm_id: str, kind: Kind) -> RemoteItem | None:
        """The item syncd made for this activity, if it exists (recovers a link lost in a crash)."""
        ...

    def create(self, activity: Activity) -> WriteResult:
        """Create the item; raises AlreadyExists if one with the same identity is there."""
        ...

    def update(self, ref: str, etag: str | None, activity: Activity, raw: object = None) -> WriteResult:
        """Overwrite the item if it still has ``etag``; raises PreconditionFailed otherwise."""
        ...

    def delete(self, ref: str, etag: str | None) -> None:
        """Delete the item if it still has ``etag``; an item already gone is not an error."""
        ...

    def check(self) -> list[str]:
        """Probe the connection and permissions; returns problems in words an admin understands."""
        ...

    @property
    def location(self) -> str:
        """Where the items live (collection URLs, a mailbox), without credentials: the engine keeps
        it, so that a binding pointed at another calendar is not taken for one that lost its items."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Prefetching(Protocol):
    """What a connector may offer beyond :class:`Connector`: told which items a pass will update
    without a copy from the feed (the CRM changed them, the calendar did not), it reads the bodies it
    writes over in batches instead of one read per update (CalDAV: calendar-multiget, not a GET each).
    The engine calls it when the connector has it (``getattr``), once before the pass's writes."""

    def prefetch(self, refs: Sequence[str]) -> None:
        """The refs that :meth:`Connector.update` will be called for with no ``raw``, in the order of
        the writes; valid until the next :meth:`Connector.changes`. Never raises and never weakens an
        update: what it could not read is read by the update as without it."""
        ...


@runtime_checkable
class Paging(Protocol):
    """What a connector may offer beyond :class:`Connector`: the change feed without the items' bodies,
    which the engine then reads with :meth:`Connector.fetch` a page at a time and settles page by page
    (a pull of 50,000 items holds one page of them, not the calendar). The engine calls it instead of
    :meth:`Connector.changes` when the connector has it (``getattr``)."""

    def listing(self, state: str | None, known: Mapping[str, str | None]) -> RemoteListing:
        """As :meth:`Connector.changes`, with the changed items' refs instead of the items."""
        ...


@runtime_checkable
class ReadAhead(Protocol):
    """What a :class:`Paging` connector may offer beyond it: the pages of a pull read one ahead, the
    next page's request running while the engine parses, plans and writes the current one. The engine
    calls it instead of :meth:`Connector.fetch` per page when the connector has it (``getattr``)."""

    def fetch_pages(self, pages: Iterable[Sequence[str]]) -> Iterator[list[RemoteItem]]:
        """:meth:`Connector.fetch` of each page in order. A request's failure is raised when its page
        is asked for, after the pages before it; closed early, it waits for the request in flight."""
        ...


class NetworkSettings(Protocol):
    """The network part of every connector's settings (``syncd.config``'s ``*Remote`` sections)."""

    @property
    def verify_tls(self) -> bool | str:
        """``True``, ``False`` or the path of a CA bundle to verify the server's certificate with."""
        ...

    @property
    def timeout(self) -> float:
        """Seconds one request may take."""
        ...

    @property
    def max_backoff(self) -> float:
        """Seconds of Retry-After (429, 503) a pass waits out in all before it fails."""
        ...


def reveal_secret(value: object) -> str | None:
    """A setting's secret as the text to send: a pydantic ``SecretStr`` (or a secret syncd reads from a
    file or the environment only now) revealed, a plain value as it is."""
    reveal = getattr(value, "get_secret_value", None)
    if callable(reveal):
        return str(reveal())
    return None if value is None else str(value)
