"""The CalDAV connector: one binding's events collection and (optionally) tasks collection.

Change detection costs one request per collection when nothing changed: an RFC 6578 sync-collection
REPORT where the server offers it, else a ctag PROPFIND (followed, if the ctag moved, by an etag
listing compared against what the engine knows). Changed items are read with calendar-multiget in
batches. Writes are conditional (If-None-Match / If-Match). iCalendar is built and read only by
:mod:`syncd.mapping.ical`; this module only checks that a body it is about to write over arrived
whole (:func:`damage`), because an update keeps what the read held and nothing else.

Refs are the items' canonical paths (``/dav/alice/work/1234%40syncd.ics``); the opaque state is a
JSON object with a sync token or ctag per collection path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from icalendar import Calendar

from syncd.connectors import caldav_protocol as dav
from syncd.connectors.base import (
    RemoteChanges,
    RemoteItem,
    WriteResult,
    read_isolated,
    remote_item,
)
from syncd.connectors.caldav_collection import (
    DavCollection,
    InvalidSyncToken,
    RawItem,
    SyncUnsupported,
)
from syncd.connectors.caldav_transport import DavTransport, TruncatedReply, strip_userinfo
from syncd.errors import ItemError, NotFound, PreconditionFailed, RemoteError
from syncd.mapping.context import MappingContext
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.identity import uid_for
from syncd.model import Activity, Kind

STATE_VERSION = 1
#: GETs of an item to write over before giving up on it for this pass; a damaged answer is
#: usually a one-off (a cut connection, a proxy), a second damaged one is reported.
BASE_READS = 2
_WRITE_PRIVILEGES = {
    dav.clark(dav.DAV, "all"),
    dav.clark(dav.DAV, "write"),
    dav.clark(dav.DAV, "write-content"),
    dav.clark(dav.DAV, "bind"),
}


class CalDavSettings(Protocol):
    """What the connector reads from a binding's ``remote`` section (``syncd.config.CalDavRemote``)."""

    @property
    def url(self) -> str: ...
    @property
    def tasks_url(self) -> str | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> object:
        """A ``str``, a pydantic ``SecretStr`` or ``None``."""
        ...
    @property
    def auth(self) -> str | None:
        """``basic``, ``digest``, or ``auto``/``None`` (answer the server's challenge)."""
        ...
    @property
    def verify_tls(self) -> bool | str: ...
    @property
    def timeout(self) -> float: ...


@dataclass(frozen=True, slots=True)
class CalDavConfig:
    """A plain :class:`CalDavSettings`, for tests and ``syncd demo``."""

    url: str
    tasks_url: str | None = None
    username: str | None = None
    password: str | None = None
    auth: str | None = None
    verify_tls: bool | str = True
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class CollectionState:
    sync: bool
    """Whether change detection uses sync-collection (else ctag + etag listing)."""
    token: str | None = None
    ctag: str | None = None


@dataclass(frozen=True, slots=True)
class _Pass:
    """One collection's outcome of a change pass, before items are fetched."""

    to_fetch: list[str]
    deleted: list[str]
    state: CollectionState
    total: int | None


class CalDavConnector:
    """Implements :class:`syncd.connectors.base.Connector` over CalDAV.

    ``use_sync_collection``: ``None`` detects RFC 6578 support per collection
    (DAV:supported-report-set); ``False`` forces ctag and etag listing, ``True`` trusts the server.
    """

    def __init__(
        self,
        config: CalDavSettings,
        ctx: MappingContext,
        *,
        use_sync_collection: bool | None = None,
    ) -> None:
        self._ctx = ctx
        self._use_sync = use_sync_collection
        auth = config.auth if config.auth not in (None, "auto") else None
        self._transport = DavTransport(
            config.url,
            username=config.username,
            password=_secret(config.password),
            auth=auth,
            verify_tls=config.verify_tls,
            timeout=config.timeout,
        )
        self._events = DavCollection(self._transport, config.url)
        tasks = DavCollection(self._transport, config.tasks_url) if config.tasks_url else None
        self._tasks = tasks if tasks is not None and tasks.path != self._events.path else self._events

    @property
    def _collections(self) -> list[DavCollection]:
        return [self._events] if self._tasks is self._events else [self._events, self._tasks]

    def _collection_for(self, kind: Kind) -> DavCollection:
        return self._tasks if kind == Kind.TASK else self._events

    def _collection_of(self, ref: str) -> DavCollection | None:
        return next((c for c in self._collections if c.contains(ref)), None)

    # --- reading -------------------------------------------------------------------------------

    def changes(self, state: str | None, known: Mapping[str, str | None]) -> RemoteChanges:
        saved, scheme = _load_state(state)
        if scheme:
            # Learnt on an earlier pass: authenticate up front, so an idle pass is one request.
            self._transport.use_scheme(scheme)
        changed: list[RemoteItem] = []
        deleted: list[str] = []
        states: dict[str, CollectionState] = {}
        totals: list[int | None] = []
        for collection in self._collections:
            known_here = {ref: etag for ref, etag in known.items() if collection.contains(ref)}
            result = self._collection_pass(collection, saved.get(collection.path), known_here)
            if result.to_fetch:
                changed.extend(self._parse(raw) for raw in collection.multiget(result.to_fetch))
            deleted.extend(result.deleted)
            states[collection.path] = result.state
            totals.append(result.total)
        total = None if any(t is None for t in totals) else sum(t for t in totals if t is not None)
        return RemoteChanges(changed, deleted, _dump_state(states, self._transport.scheme), total)

    def _collection_pass(
        self, collection: DavCollection, previous: CollectionState | None, known: dict[str, str | None]
    ) -> _Pass:
        if previous is None:
            use_sync = self._use_sync
            if use_sync is None:
                use_sync = collection.info().supports_sync
            return self._full_read(collection, use_sync, known)
        use_sync = previous.sync if self._use_sync is None else self._use_sync
        if use_sync:
            return self._sync_pass(collection, previous, known)
        return self._ctag_pass(collection, previous, known)

    def _sync_pass(
        self, collection: DavCollection, previous: CollectionState, known: dict[str, str | None]
    ) -> _Pass:
        if not previous.token:
            return self._full_read(collection, True, known)
        try:
            delta = collection.sync(previous.token)
        except InvalidSyncToken:
            return self._full_read(collection, True, known)
        except SyncUnsupported:
            return self._full_read(collection, False, known)
        # Our own writes come back too; the engine already has them if the etag is the one it knows.
        to_fetch = [p for p, etag in delta.changed.items() if not dav.same_etag(etag, known.get(p))]
        gone = [p for p in delta.deleted if p in known]
        return _Pass(to_fetch, gone, CollectionState(sync=True, token=delta.token), None)

    def _ctag_pass(
        self, collection: DavCollection, previous: CollectionState, known: dict[str, str | None]
    ) -> _Pass:
        ctag = collection.ctag()
        if ctag is not None and ctag == previous.ctag:
            return _Pass([], [], previous, None)
        listing = collection.list_etags()
        to_fetch = [p for p, etag in listing.items() if not dav.same_etag(etag, known.get(p))]
        gone = [p for p in known if p not in listing]
        return _Pass(to_fetch, gone, CollectionState(sync=False, ctag=ctag), len(listing))

    def _full_read(
        self, collection: DavCollection, use_sync: bool, known: dict[str, str | None]
    ) -> _Pass:
        listing: Mapping[str, str | None]
        if use_sync:
            try:
                delta = collection.sync(None)
            except SyncUnsupported:
                return self._full_read(collection, False, known)
            listing, state = delta.changed, CollectionState(sync=True, token=delta.token)
        else:
            # The ctag is read before the listing: a change in between shows up in the next pass.
            ctag = collection.ctag()
            listing, state = collection.list_etags(), CollectionState(sync=False, ctag=ctag)
        gone = [p for p in known if p not in listing]
        return _Pass(sorted(listing), gone, state, len(listing))

    def fetch(self, refs: Sequence[str]) -> list[RemoteItem]:
        items: list[RemoteItem] = []
        for collection in self._collections:
            mine = list(dict.fromkeys(r for r in refs if collection.contains(r)))
            if mine:
                items.extend(self._parse(raw) for raw in collection.multiget(mine))
        return items

    def find(self, crm_id: str, kind: Kind) -> RemoteItem | None:
        collection = self._collection_for(kind)
        uid = uid_for(crm_id)
        raw = collection.get(collection.item_path(uid + ".ics"))
        if raw is None:
            # Another client (or an older syncd) may have stored it under a different name.
            component = "VTODO" if kind == Kind.TASK else "VEVENT"
            raw = next(iter(collection.find_uid(component, uid)), None)
        return self._parse(raw) if raw is not None else None

    def _parse(self, raw: RawItem) -> RemoteItem:
        def parse() -> RemoteItem:
            try:
                parsed = from_ical(raw.data, self._ctx, raw.path)
            except (ItemError, ValueError):
                # icalendar's words for a cut body ("found no components") do not say what happened.
                cut = _unframed(raw.data, _content_lines(raw.data))
                if cut is not None:
                    raise ItemError(raw.path, None, cut) from None
                raise
            return remote_item(raw.path, raw.etag, parsed, raw.data)

        return read_isolated(raw.path, raw.etag, parse, raw=raw.data)

    # --- writing -------------------------------------------------------------------------------

    def create(self, activity: Activity) -> WriteResult:
        collection = self._collection_for(activity.kind)
        path = collection.item_path(uid_for(activity.id) + ".ics")
        etag = collection.create(path, to_ical(activity, self._ctx))
        return WriteResult(path, etag)

    def update(self, ref: str, etag: str | None, activity: Activity, raw: object = None) -> WriteResult:
        """Write over what the server holds, not from scratch: its UID (an item syncd paired with may
        have another client's UID) and other clients' properties must survive, so the base of the
        write must be the whole item. ``raw`` (the feed's copy) is that base if it arrived whole, else
        the item is read again; a base that does not arrive whole is never written over."""
        collection = self._collection_of(ref) or self._collection_for(activity.kind)
        base = raw if isinstance(raw, bytes) else None
        if base is None or damage(base) is not None:
            # A damaged copy from the feed was the first read: one fresh GET is its retry.
            base = self._read_base(collection, ref, etag, BASE_READS if base is None else BASE_READS - 1)
        new_etag = collection.update(ref, etag, to_ical(activity, self._ctx, base=base))
        return WriteResult(ref, new_etag)

    def _read_base(self, collection: DavCollection, ref: str, etag: str | None, reads: int) -> bytes:
        """The item's body as the server holds it at ``etag``, read with up to ``reads`` GETs.

        Raises PreconditionFailed when the server holds another version (the engine re-reads and
        decides again) and ItemError when every answer was damaged.
        """
        reason = "the item could not be read"
        for _ in range(reads):
            try:
                current = collection.get(ref)
            except TruncatedReply as exc:
                reason = exc.reason
                continue
            if current is None:
                raise NotFound(ref)
            if etag is not None and current.etag is not None and not dav.same_etag(current.etag, etag):
                # Without an ETag header the If-Match of the write still refuses another version.
                raise PreconditionFailed(ref)
            problem = damage(current.data)
            if problem is None:
                return current.data
            reason = problem
        raise ItemError(ref, None, f"{reason}; not written, to keep other clients' properties")

    def delete(self, ref: str, etag: str | None) -> None:
        (self._collection_of(ref) or self._events).delete(ref, etag)

    # --- housekeeping --------------------------------------------------------------------------

    def check(self) -> list[str]:
        needs = {self._events.path: {"VEVENT"}}
        needs.setdefault(self._tasks.path, set()).add("VTODO")
        problems: list[str] = []
        for collection in self._collections:
            try:
                info = collection.info()
            except RemoteError as exc:
                problems.append(str(exc))
                continue
            if not info.is_calendar:
                problems.append(f"{collection.url} is not a calendar collection")
                continue
            missing = needs[collection.path] - (info.components if info.components is not None else set())
            if info.components is not None and missing:
                what = " and ".join(_COMPONENT_WORDS[c] for c in sorted(missing))
                problems.append(f"{collection.url} does not accept {what}")
            if info.privileges is not None and not info.privileges & _WRITE_PRIVILEGES:
                problems.append(f"{collection.url}: the user may read but not write this calendar")
        return problems

    @property
    def location(self) -> str:
        return " + ".join(strip_userinfo(c.url) for c in self._collections)

    def close(self) -> None:
        self._transport.close()


_COMPONENT_WORDS = {"VEVENT": "events (VEVENT)", "VTODO": "tasks (VTODO)"}
_LINE_BREAK = re.compile(r"\r\n|\n|\r")


def damage(data: bytes) -> str | None:
    """Why ``data`` is not a whole iCalendar object as a server would hold it, or ``None``.

    A body cut at a line boundary, or one whose broken lines icalendar skipped without a word, still
    parses; written over, it would lose what is missing. Whole means: BEGIN:VCALENDAR first,
    END:VCALENDAR last, and the parse kept every content line (counted after unfolding; icalendar
    yields each property value, BEGIN and END once per line).
    """
    lines = _content_lines(data)
    unframed = _unframed(data, lines)
    if unframed is not None:
        return unframed
    try:
        calendar = Calendar.from_ical(data)
    except Exception as exc:  # noqa: BLE001  # icalendar raises many types on odd input
        return f"the item as read cannot be parsed ({type(exc).__name__}: {exc})"
    kept = sum(1 for _ in calendar.property_items(recursive=True, sorted=False))
    if kept == len(lines):
        return None
    skipped = [
        str(message).partition(": ")[2] or str(message)
        for component in calendar.walk()
        for prop, message in component.errors
        if prop is None
    ]
    which = f" (first: {skipped[0]})" if skipped else ""
    return f"reading the item kept {kept} of its {len(lines)} lines{which}"


def _unframed(data: bytes, lines: list[str]) -> str | None:
    if not lines or lines[0].strip().upper() != "BEGIN:VCALENDAR":
        return "the item as read does not start with BEGIN:VCALENDAR"
    if lines[-1].strip().upper() != "END:VCALENDAR":
        return f"the item as read ends before END:VCALENDAR (cut short after {len(data)} bytes)"
    return None


def _content_lines(data: bytes) -> list[str]:
    """Unfolded, non-empty content lines (RFC 5545 3.1: a line starting with a blank continues the last)."""
    lines: list[str] = []
    for line in _LINE_BREAK.split(data.decode("utf-8", errors="replace")):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += line[1:]
        elif line.strip():
            lines.append(line)
    return lines


def _secret(value: object) -> str | None:
    reveal = getattr(value, "get_secret_value", None)
    if callable(reveal):
        return str(reveal())
    return None if value is None else str(value)


def _load_state(state: str | None) -> tuple[dict[str, CollectionState], str | None]:
    """The per-collection state and the auth scheme the server asked for; anything unreadable means
    "read everything again", never an error."""
    if not state:
        return {}, None
    try:
        data = json.loads(state)
        if data.get("version") != STATE_VERSION:
            return {}, None
        collections = {
            path: CollectionState(
                sync=bool(entry["sync"]), token=entry.get("token"), ctag=entry.get("ctag")
            )
            for path, entry in data["collections"].items()
        }
        scheme = data.get("auth")
        return collections, scheme if isinstance(scheme, str) else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}, None


def _dump_state(states: Mapping[str, CollectionState], scheme: str | None = None) -> str:
    collections = {
        path: {"sync": s.sync, "token": s.token, "ctag": s.ctag} for path, s in sorted(states.items())
    }
    data: dict[str, object] = {"version": STATE_VERSION, "collections": collections}
    if scheme:
        data["auth"] = scheme
    return json.dumps(data, sort_keys=True)
