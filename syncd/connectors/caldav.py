"""The CalDAV connector: one binding's events collection and (optionally) tasks collection.

Change detection costs one request per collection when nothing changed: an RFC 6578 sync-collection
REPORT where the server offers it, else a ctag PROPFIND (followed, if the ctag moved, by an etag
listing compared against what the engine knows). Changed items are read with calendar-multiget in
batches. Writes are conditional (If-None-Match / If-Match). iCalendar is built and read only by
:mod:`syncd.mapping.ical`; this module only checks that a body it is about to write over arrived
whole (:func:`damage`), because an update keeps what the read held and nothing else. The bodies of
items the CRM changed and the calendar did not are read with calendar-multiget too, in batches as the
updates reach them (:meth:`CalDavConnector.prefetch`), not with a GET before each PUT.

Refs are the items' canonical paths; syncd names the items it creates by a UUID of the CRM id
(:func:`~syncd.mapping.identity.resource_name`), never by the id itself, and follows an item to
wherever the server put it (a Location header, a search by UID). The opaque state is a JSON object
with a sync token or ctag per collection path and when its members were last listed in full.

The change feed is trusted only so far: a deletion it reports is believed once a listing of the
collection confirms it (a renaming server reports the written name gone, the item lives on under
another), and every ``full_check_interval`` hours a full etag listing (one PROPFIND Depth 1) is
compared with what the engine knows, repairing what the feed missed in either direction (a server
that answers a stale sync token with a partial list instead of RFC 6578's valid-sync-token error).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Protocol

from syncd.connectors import caldav_protocol as dav
from syncd.connectors import parse_pool
from syncd.connectors.base import (
    NetworkSettings,
    RemoteChanges,
    RemoteItem,
    RemoteListing,
    WriteResult,
    reveal_secret,
)
from syncd.connectors.batched_reads import BatchedReads
from syncd.connectors.body_spool import BodySpool
from syncd.connectors.caldav_collection import (
    MULTIGET_BATCH,
    DavCollection,
    InvalidSyncToken,
    RawItem,
    SyncUnsupported,
    UidTaken,
    Written,
)
from syncd.connectors.caldav_item import damage, parse_item
from syncd.connectors.caldav_transport import DavTransport, EarlyAnswer, TruncatedReply, strip_userinfo
from syncd.connectors.read_ahead import read_ahead
from syncd.errors import ItemError, NotFound, PreconditionFailed, RemoteError
from syncd.logging import get_logger
from syncd.mapping.context import MappingContext
from syncd.mapping.identity import copy_uid, resource_name, uid_for
from syncd.model import Activity, Kind

log = get_logger("syncd.connectors.caldav")

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


#: How long a process keeps the URLs of calendars named by display name (seconds).
RESOLVED_FOR = 3600.0
_RESOLVED: dict[tuple[str, str | None, str | None, str | None, str | None], tuple[float, str, str | None]] = {}


class CalDavSettings(NetworkSettings, Protocol):
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
    def full_check_interval(self) -> float:
        """Hours between full etag listings that check the change feed; 0: every pass."""
        ...
    @property
    def calendar(self) -> str | None:
        """A calendar's display name: ``url`` then names a server, principal or home to find it from."""
        ...
    @property
    def tasks_calendar(self) -> str | None: ...


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
    max_backoff: float = 60.0
    full_check_interval: float = 24.0
    calendar: str | None = None
    tasks_calendar: str | None = None


@dataclass(frozen=True, slots=True)
class CollectionState:
    sync: bool
    """Whether change detection uses sync-collection (else ctag + etag listing)."""
    token: str | None = None
    ctag: str | None = None
    checked: float | None = None
    """When (epoch seconds) the members were last listed in full and compared with what syncd knows."""


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
        clock: Callable[[], float] = time.time,
        early: EarlyAnswer | None = None,
    ) -> None:
        """``early``: the reply to this connector's first request, sent while ``syncd sync`` started."""
        self._ctx = ctx
        self._workers: parse_pool.Reservation | None = None
        self._listed = BodySpool()
        """Bodies a first pull's listing brought, until the pass reads them."""
        self._use_sync = use_sync_collection
        self._clock = clock
        self._config = config
        self._check_every = max(0.0, float(getattr(config, "full_check_interval", 24.0))) * 3600
        auth = config.auth if config.auth not in (None, "auto") else None
        self._transport = DavTransport(
            config.url,
            username=config.username,
            password=reveal_secret(config.password),
            auth=auth,
            verify_tls=config.verify_tls,
            timeout=config.timeout,
            max_backoff=getattr(config, "max_backoff", 60.0),
            early=early,
        )
        self._bound: tuple[DavCollection, DavCollection] | None = None
        self._bodies: BatchedReads[RawItem] = self._batched_reads()

    def _resolve(self) -> tuple[DavCollection, DavCollection]:
        """The events and tasks collections; a calendar given by name is looked up once, here."""
        if self._bound is None:
            config = self._config
            events_name = getattr(config, "calendar", None)
            tasks_name = getattr(config, "tasks_calendar", None)
            events_url, tasks_url = config.url, config.tasks_url
            if events_name or tasks_name:
                events_url, tasks_url = self._by_name(events_name, tasks_name)
            events = DavCollection(self._transport, events_url)
            tasks = DavCollection(self._transport, tasks_url) if tasks_url else None
            self._bound = (events, tasks if tasks is not None and tasks.path != events.path else events)
        return self._bound

    def _by_name(self, events_name: str | None, tasks_name: str | None) -> tuple[str, str | None]:
        """The URLs of calendars given by display name, found from ``url`` (discovery costs three or
        four PROPFINDs, so a process asks again only after :data:`RESOLVED_FOR` seconds: a renamed
        calendar is found again then)."""
        from syncd.connectors.caldav_discovery import discover, pick

        config = self._config
        key = (config.url, config.username, events_name, tasks_name, config.tasks_url)
        cached = _RESOLVED.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        found = discover(self._transport, config.url)
        events_url = pick(found, events_name, "calendar", "VEVENT").url if events_name else config.url
        tasks_url = pick(found, tasks_name, "tasks_calendar", "VTODO").url if tasks_name else config.tasks_url
        _RESOLVED[key] = (now + RESOLVED_FOR, events_url, tasks_url)
        return events_url, tasks_url

    @property
    def _events(self) -> DavCollection:
        return self._resolve()[0]

    @property
    def _tasks(self) -> DavCollection:
        return self._resolve()[1]

    @property
    def _collections(self) -> list[DavCollection]:
        return [self._events] if self._tasks is self._events else [self._events, self._tasks]

    def _collection_for(self, kind: Kind) -> DavCollection:
        return self._tasks if kind == Kind.TASK else self._events

    def _collection_of(self, ref: str) -> DavCollection | None:
        return next((c for c in self._collections if c.contains(ref)), None)

    # --- reading -------------------------------------------------------------------------------

    def changes(self, state: str | None, known: Mapping[str, str | None]) -> RemoteChanges:
        listed = self.listing(state, known)
        return RemoteChanges(self.fetch(listed.changed), listed.deleted, listed.state, listed.total)

    def listing(self, state: str | None, known: Mapping[str, str | None]) -> RemoteListing:
        """Implements :class:`syncd.connectors.base.Paging`: the hrefs to read, not their bodies."""
        # A new pass: bodies read for the last one's updates may be stale.
        self._bodies.expect(())
        saved, scheme = _load_state(state)
        self._release_workers()
        self._listed.close()
        self._listed = BodySpool()
        if any(saved.get(c.path) is None for c in self._collections):
            # A first pull of a collection: its listing (seconds of the server's time when it is full)
            # hides the start of the workers that would parse it.
            self._workers = parse_pool.reserve()
        if scheme:
            # Learnt on an earlier pass: authenticate up front, so an idle pass is one request.
            self._transport.use_scheme(scheme)
        changed: list[str] = []
        deleted: list[str] = []
        states: dict[str, CollectionState] = {}
        totals: list[int | None] = []
        for collection in self._collections:
            known_here = {ref: etag for ref, etag in known.items() if collection.contains(ref)}
            result = self._collection_pass(collection, saved.get(collection.path), known_here)
            changed.extend(result.to_fetch)
            deleted.extend(result.deleted)
            states[collection.path] = result.state
            totals.append(result.total)
        total = None if any(t is None for t in totals) else sum(t for t in totals if t is not None)
        if len(changed) < parse_pool.MIN_ITEMS:
            self._release_workers()
        return RemoteListing(changed, deleted, _dump_state(states, self._transport.scheme), total)

    def _release_workers(self) -> None:
        if self._workers is not None:
            self._workers.release()
            self._workers = None

    def _collection_pass(
        self, collection: DavCollection, previous: CollectionState | None, known: dict[str, str | None]
    ) -> _Pass:
        if previous is None:
            use_sync = self._use_sync
            if use_sync is None:
                use_sync = collection.supports_sync()
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
        state = CollectionState(sync=True, token=delta.token, checked=previous.checked)
        gone = [p for p in delta.deleted if p in known]
        due = self._check_due(previous)
        if gone or due:
            # A reported deletion is confirmed by the listing; where a renamed item went is an href the
            # feed reports and the engine does not know, fetched and paired by its syncd identity.
            return self._reconcile(collection, known, state, feed=(delta.changed, gone), full=due)
        # Our own writes come back too; the engine already has them if the etag is the one it knows.
        to_fetch = [p for p, etag in delta.changed.items() if not dav.same_etag(etag, known.get(p))]
        return _Pass(to_fetch, [], state, None)

    def _ctag_pass(
        self, collection: DavCollection, previous: CollectionState, known: dict[str, str | None]
    ) -> _Pass:
        ctag = collection.ctag()
        if ctag is not None and ctag == previous.ctag and not self._check_due(previous):
            return _Pass([], [], previous, None)
        return self._reconcile(collection, known, CollectionState(sync=False, ctag=ctag))

    def _check_due(self, previous: CollectionState) -> bool:
        return previous.checked is None or self._clock() - previous.checked >= self._check_every

    def _reconcile(
        self,
        collection: DavCollection,
        known: dict[str, str | None],
        state: CollectionState,
        feed: tuple[Mapping[str, str | None], list[str]] | None = None,
        full: bool = True,
    ) -> _Pass:
        """Compare a full etag listing with what the engine knows: a changed etag is a change, a known
        href that is not listed a deletion, an href the engine does not know a new (or moved) item.
        With ``feed`` (what sync-collection reported), what the feed missed is logged; unless ``full``
        (a listing only to confirm deletions), hrefs unknown to both are left alone: the calendar's
        items that are not synced (outside the window, not imported) would be read on every deletion."""
        checked = self._clock()
        listing = collection.list_etags()
        reported = feed[0] if feed is not None else {}
        to_fetch = [
            p for p, etag in listing.items()
            if not dav.same_etag(etag, known.get(p)) and (full or p in known or p in reported)
        ]
        gone = [p for p in known if p not in listing]
        if feed is not None:
            deleted = feed[1]
            missed = [p for p in to_fetch if p not in reported] + [p for p in gone if p not in deleted]
            kept = [p for p in deleted if p in listing]
            if missed or kept:
                log.warning("the change feed disagreed with the calendar; repaired from a full listing",
                            collection=strip_userinfo(collection.url), missed=len(missed), not_deleted=len(kept))
        return _Pass(to_fetch, gone, replace(state, checked=checked if full else state.checked), len(listing))

    def _full_read(
        self, collection: DavCollection, use_sync: bool, known: dict[str, str | None]
    ) -> _Pass:
        listing: Mapping[str, str | None]
        checked = self._clock()
        if use_sync:
            try:
                # Nothing known here: every item will be read, so the listing brings their bodies.
                delta = collection.sync(None, self._listed if not known else None)
            except SyncUnsupported:
                return self._full_read(collection, False, known)
            listing, state = delta.changed, CollectionState(sync=True, token=delta.token, checked=checked)
        else:
            # The ctag is read before the listing: a change in between shows up in the next pass.
            ctag = collection.ctag()
            listing, state = collection.list_etags(), CollectionState(sync=False, ctag=ctag, checked=checked)
        gone = [p for p in known if p not in listing]
        return _Pass(sorted(listing), gone, state, len(listing))

    def fetch(self, refs: Sequence[str]) -> list[RemoteItem]:
        # More than one multiget: each next one runs while the last one's items are parsed.
        unique = list(dict.fromkeys(refs))
        pages = [unique[start : start + MULTIGET_BATCH] for start in range(0, len(unique), MULTIGET_BATCH)]
        return [item for page in self.fetch_pages(pages) for item in page]

    def fetch_pages(self, pages: Iterable[Sequence[str]]) -> Iterator[list[RemoteItem]]:
        """Implements :class:`syncd.connectors.base.ReadAhead`: the next page's multiget runs in a
        thread while the caller works on the page it was handed; a large pull's items are parsed in
        worker processes a page ahead (:mod:`syncd.connectors.parse_pool`), others in the caller's."""
        reads = read_ahead(pages, self._read)
        workers, self._workers = self._workers, None
        with closing(reads), closing(parse_pool.parse_pages(reads, parse_item, self._ctx, reserved=workers)) as parsed:
            yield from parsed

    def _read(self, refs: Sequence[str]) -> list[RawItem]:
        raws, rest = self._listed.take(list(dict.fromkeys(refs)))
        for collection in self._collections:
            mine = [r for r in rest if collection.contains(r)]
            if mine:
                raws.extend(collection.multiget(mine))
        return raws

    def find(self, crm_id: str, kind: Kind) -> RemoteItem | None:
        collection = self._collection_for(kind)
        raw = collection.get(collection.item_path(resource_name(crm_id)))
        if raw is None:
            # Under an older name (the UID), a name the server chose, or another client's name.
            raw = self._find_uid(collection, kind, uid_for(crm_id), copy_uid(crm_id, self._ctx.owner.email))
        return self._parse(raw) if raw is not None else None

    def _find_uid(self, collection: DavCollection, kind: Kind, *uids: str) -> RawItem | None:
        component = "VTODO" if kind == Kind.TASK else "VEVENT"
        for uid in uids:
            found = next(iter(collection.find_uid(component, uid)), None)
            if found is not None:
                return found
        return None

    def _parse(self, raw: RawItem) -> RemoteItem:
        return parse_item(raw, self._ctx)

    # --- writing -------------------------------------------------------------------------------

    def create(self, activity: Activity) -> WriteResult:
        collection = self._collection_for(activity.kind)
        path = collection.item_path(resource_name(activity.id))
        from syncd.mapping.ical import to_ical

        data = to_ical(activity, self._ctx)
        uid = uid_for(activity.id)
        try:
            written = collection.create(path, data)
        except UidTaken:
            if activity.owner.casefold() == self._ctx.owner.email.casefold():
                raise
            # A copy for a participating user, on a server that keeps one UID per calendar home:
            # its own UID; X-SYNCD-ID still pairs it with the activity.
            uid = copy_uid(activity.id, self._ctx.owner.email)
            written = collection.create(path, _with_uid(data, uid))
        return self._located(collection, written, activity.kind, uid)

    def _located(self, collection: DavCollection, written: Written, kind: Kind, uid: str) -> WriteResult:
        """Where the item really is: a server that stored it under a name of its own without a
        Location header is asked by UID (one calendar-query)."""
        if written.lost:
            found = self._find_uid(collection, kind, uid)
            if found is not None:
                return WriteResult(found.path, found.etag)
        return WriteResult(written.path, written.etag)

    def prefetch(self, refs: Sequence[str]) -> None:
        """Implements :class:`syncd.connectors.base.Prefetching`: the bodies of these items are read
        with calendar-multiget as the updates reach them, not with a GET each."""
        self._bodies = self._batched_reads()
        self._bodies.expect(r for r in refs if self._collection_of(r) is not None)

    def _batched_reads(self) -> BatchedReads[RawItem]:
        """One multiget per batch of a collection's items (prefetch only expects refs of this
        binding's collections)."""

        def multiget(batch: Sequence[str]) -> list[RawItem]:
            collection = self._collection_of(batch[0])
            assert collection is not None
            return collection.multiget(batch)

        return BatchedReads(
            MULTIGET_BATCH, multiget, lambda raw: raw.path,
            together=lambda a, b: self._collection_of(a) is self._collection_of(b), same=dav.same_etag,
        )

    def update(self, ref: str, etag: str | None, activity: Activity, raw: object = None) -> WriteResult:
        """Write over what the server holds, not from scratch: its UID (an item syncd paired with may
        have another client's UID) and other clients' properties must survive, so the base of the
        write must be the whole item. ``raw`` (the feed's copy) is that base if it arrived whole, else
        the copy :meth:`prefetch` read at the version the engine decided on (``etag``), else the item
        is read again; a base that does not arrive whole is never written over."""
        collection = self._collection_of(ref) or self._collection_for(activity.kind)
        base = raw if isinstance(raw, bytes) else None
        if base is None:
            batched = self._bodies.take(ref, etag)
            # A copy at another version than the one the engine decided on is no base: the GET below
            # then says whether the item really changed (412) or the server's etags only differ.
            if batched is not None and batched.etag is not None:
                # If-Match carries the etag that came with this body: a change since is refused (412).
                base, etag = batched.data, etag or batched.etag
        if base is None or damage(base) is not None:
            # A damaged copy from the feed or the batch was the first read: one fresh GET is its retry.
            base = self._read_base(collection, ref, etag, BASE_READS if base is None else BASE_READS - 1)
        from syncd.mapping.ical import to_ical

        written = collection.update(ref, etag, to_ical(activity, self._ctx, base=base))
        return WriteResult(written.path, written.etag)

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
                where = strip_userinfo(collection.url)
                problems.append(f"{where} is not a calendar collection{self._hint(collection)}")
                continue
            missing = needs[collection.path] - (info.components if info.components is not None else set())
            if info.components is not None and missing:
                what = " and ".join(_COMPONENT_WORDS[c] for c in sorted(missing))
                problems.append(f"{collection.url} does not accept {what}")
            if info.privileges is not None and not info.privileges & _WRITE_PRIVILEGES:
                problems.append(f"{collection.url}: the user may read but not write this calendar")
        return problems

    def _hint(self, collection: DavCollection) -> str:
        """The calendars found from a URL that is not one, for ``syncd check``."""
        from syncd.connectors.caldav_discovery import discover

        try:
            found = discover(self._transport, collection.url)
        except RemoteError:
            return ""
        if not found.calendars:
            return "; no calendars found from it"
        listed = ", ".join(f'"{c.label}" {strip_userinfo(c.url)} ({c.what})' for c in found.calendars)
        return f"; calendars found from it: {listed}. Set url to one of them, or add calendar = \"NAME\""

    @property
    def location(self) -> str:
        return " + ".join(strip_userinfo(c.url) for c in self._collections)

    def close(self) -> None:
        self._release_workers()
        self._listed.close()
        self._transport.close()


_COMPONENT_WORDS = {"VEVENT": "events (VEVENT)", "VTODO": "tasks (VTODO)"}
def _with_uid(data: bytes, uid: str) -> bytes:
    from icalendar import Calendar

    calendar = Calendar.from_ical(data)
    for component in calendar.walk():
        if component.name in ("VEVENT", "VTODO"):
            component["UID"] = uid
    return calendar.to_ical()


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
                sync=bool(entry["sync"]), token=entry.get("token"), ctag=entry.get("ctag"),
                checked=float(entry["checked"]) if entry.get("checked") is not None else None,
            )
            for path, entry in data["collections"].items()
        }
        scheme = data.get("auth")
        return collections, scheme if isinstance(scheme, str) else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}, None


def _dump_state(states: Mapping[str, CollectionState], scheme: str | None = None) -> str:
    collections = {
        path: {"sync": s.sync, "token": s.token, "ctag": s.ctag, "checked": s.checked}
        for path, s in sorted(states.items())
    }
    data: dict[str, object] = {"version": STATE_VERSION, "collections": collections}
    if scheme:
        data["auth"] = scheme
    return json.dumps(data, sort_keys=True)
