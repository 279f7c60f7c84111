"""The Graph connector: one Exchange Online mailbox's calendar and a Microsoft To Do list, over Graph.

Change detection: ``calendarView/delta`` over a wide window (:data:`PAST` before to :data:`FUTURE`
after the day it was started) and ``todo/lists/{id}/tasks/delta``, each resumed from its deltaLink:
one request per folder when nothing changed. The window is kept in the state and re-based (a full
listing) once its end is less than :data:`REBASE` away. Delta rows are instances: an occurrence or
exception row means "its series changed" and its master is read. The refs whose changeKey differs
from what the engine knows are the listing (:class:`~syncd.connectors.base.Paging`): the engine reads
them a page at a time in ``$batch`` requests (20 a request) with ``$select``, syncd's extended
properties and the series' ``exceptionOccurrences`` / ``cancelledOccurrences``.

Deletions are never taken on trust: ``@removed`` also reports items that left the window, so a removed
(or, after a full listing, a missing) known item is looked up first and reported deleted only when
Graph answers 404. A delta token Graph no longer accepts (410 SyncStateNotFound) makes that folder be
listed again from scratch, which pairs by ref: nothing is duplicated.

Writes: an event is created with a ``transactionId`` derived from the mailbox, the CRM id and the
event's content, so a create whose answer was lost is sent again and Graph answers with the event it
already made; no other POST is repeated. Updates PATCH only what differs, with ``If-Match``: 412/409
-> :class:`~syncd.errors.PreconditionFailed`; the events and tasks they write over, when the feed brought
no copy, are read in one ``$batch`` of 20 as the updates reach them (:meth:`GraphConnector.prefetch`). A
series' deleted and modified occurrences are written after the master through its ``instances``. Tasks
carry the CRM id in a linkedResource and syncd's data in an open extension (:mod:`syncd.mapping.graph_todo`).

Refs: event ids as Graph gives them; To Do task ids prefixed :data:`TASK_PREFIX` (the engine keeps one
namespace of refs). Etags: changeKeys (events) and ``@odata.etag`` values (tasks). The opaque state is
JSON: both deltaLinks, the window, the resolved calendar and list ids, and the known series masters.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from syncd.connectors.base import (
    RemoteChanges,
    RemoteItem,
    RemoteListing,
    WriteResult,
    item_failure,
    read_isolated,
    remote_item,
)
from syncd.connectors.batched_reads import BatchedReads, ref_of
from syncd.connectors.graph_session import BATCH_MAX, Answer, GraphSession, GraphSettings
from syncd.errors import ItemError, NotFound, RemoteError, SyncdError
from syncd.logging import get_logger
from syncd.mapping import graph_props as gp
from syncd.mapping.context import MappingContext
from syncd.mapping.graph import event_from_graph, event_patch, event_to_graph, occurrence_patch
from syncd.mapping.graph_todo import (
    EXTENSION,
    extension_of,
    link_of,
    task_extension,
    task_from_graph,
    task_link,
    task_patch,
    task_to_graph,
)
from syncd.mapping.outlook_recurrence import OccurrenceChange, occurrence_changes
from syncd.model import Activity, Kind

__all__ = ["GraphConnector"]

log = get_logger("syncd.connectors.graph")

STATE_VERSION = 1
TASK_PREFIX = "todo:"
PAST = timedelta(days=2 * 365)
FUTURE = timedelta(days=5 * 365)
REBASE = timedelta(days=365)
_UTC = {"Prefer": 'outlook.timezone="UTC"'}
_PAGE = {"Prefer": 'outlook.timezone="UTC", odata.maxpagesize=200'}
_SELECT = ",".join((
    "id", "changeKey", "type", "seriesMasterId", "iCalUId", "subject", "body", "start", "end",
    "originalStartTimeZone", "originalEndTimeZone", "isAllDay", "showAs", "isCancelled", "importance",
    "sensitivity", "categories", "location", "isReminderOn", "reminderMinutesBeforeStart", "attendees", "organizer",
    "recurrence", "lastModifiedDateTime", "createdDateTime", "cancelledOccurrences",
))
_EXPAND = f"{gp.EXPAND_PROPERTIES},exceptionOccurrences"
_TX_NAMESPACE = uuid.UUID("6a1f0c3e-2b7d-5e49-8c0a-73796e636447")


class GraphRemoteSettings(GraphSettings, Protocol):
    @property
    def calendar(self) -> str: ...
    @property
    def tasks(self) -> str | bool: ...
    @property
    def send_invitations(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Fetched:
    """``RemoteItem.raw``: the JSON as read and the activity it mapped to."""

    item: dict[str, Any]
    activity: Activity | None


@dataclass(slots=True)
class _State:
    events: str | None = None
    tasks: str | None = None
    window: tuple[str, str] | None = None
    calendar: tuple[str, str] | None = None
    """(configured name, resolved path)."""
    task_list: tuple[str, str] | None = None
    series: list[str] = field(default_factory=list)

    def dump(self) -> str:
        return json.dumps({
            "version": STATE_VERSION, "events": self.events, "tasks": self.tasks, "window": self.window,
            "calendar": self.calendar, "task_list": self.task_list, "series": sorted(set(self.series)),
        }, sort_keys=True)


def _load_state(state: str | None) -> _State:
    """Anything unreadable means "list everything", never an error."""
    if not state:
        return _State()
    try:
        data = json.loads(state)
        if data.get("version") != STATE_VERSION:
            return _State()
        pair = lambda v: (str(v[0]), str(v[1])) if isinstance(v, list) and len(v) == 2 else None  # noqa: E731
        return _State(
            events=data.get("events") or None, tasks=data.get("tasks") or None, window=pair(data.get("window")),
            calendar=pair(data.get("calendar")), task_list=pair(data.get("task_list")),
            series=[str(s) for s in data.get("series") or ()],
        )
    except (ValueError, TypeError, AttributeError):
        return _State()


@dataclass(slots=True)
class _Listing:
    changed: dict[str, str | None] = field(default_factory=dict)
    """ref -> changeKey / etag as the feed shows it (None: unknown, read it)."""
    removed: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    """Series masters the rows name (occurrences and exceptions carry their master's id)."""
    full: bool = False
    link: str | None = None


class GraphConnector:
    """Implements :class:`syncd.connectors.base.Connector` over Microsoft Graph."""

    def __init__(self, settings: GraphRemoteSettings, ctx: MappingContext, clock: Any = None) -> None:
        self._ctx = ctx
        self._settings = settings
        self._session = GraphSession(settings)
        self._user = settings.user
        self._invitations = settings.send_invitations
        self._clock = clock or (lambda: datetime.now(UTC))
        self._calendar_path: str | None = None
        self._list_id: str | None = None
        self._copies = BatchedReads(BATCH_MAX, self._read_for_updates, ref_of)

    def _path(self, path: str) -> str:
        return self._session.user_path(path)

    # --- folders -------------------------------------------------------------------------------

    def _calendar(self, saved: _State | None = None) -> str:
        """The calendar's path under the user: ``calendar`` or ``calendars/{id}``."""
        wanted = self._settings.calendar
        if self._calendar_path is None and saved is not None and saved.calendar and saved.calendar[0] == wanted:
            self._calendar_path = saved.calendar[1]
        if self._calendar_path is None:
            if wanted in ("", "default"):
                self._calendar_path = "calendar"
            else:
                found = None
                for page in self._pages_for("calendar", self._path("calendars"), {"$select": "id,name"}):
                    for cal in page.get("value") or ():
                        if wanted in (cal.get("id"), cal.get("name")):
                            found = cal["id"]
                if found is None:
                    raise RemoteError(f"the mailbox {self._user} has no calendar named {wanted!r}")
                self._calendar_path = f"calendars/{found}"
        return self._calendar_path

    def _tasks_enabled(self) -> bool:
        return self._settings.tasks not in (False, "", None)

    def _list(self, saved: _State | None = None) -> str:
        wanted = str(self._settings.tasks)
        if self._list_id is None and saved is not None and saved.task_list and saved.task_list[0] == wanted:
            self._list_id = saved.task_list[1]
        if self._list_id is None:
            found = None
            for page in self._pages_for("tasks", self._path("todo/lists")):
                for lst in page.get("value") or ():
                    default = lst.get("wellknownListName") == "defaultList"
                    if (wanted == "default" and default) or wanted in (lst.get("id"), lst.get("displayName")):
                        found = lst["id"]
            if found is None:
                raise RemoteError(f"the mailbox {self._user} has no To Do list {wanted!r}")
            self._list_id = found
        return self._list_id

    def _pages_for(self, area: str, path: str, params: dict[str, str] | None = None) -> Iterable[dict[str, Any]]:
        url: str | None = path
        first = True
        while url:
            answer = self._session.call("GET", url, params=params if first else None, headers=_UTC)
            first = False
            self._session.raise_for(answer, area=area)
            yield answer.body
            url = answer.body.get("@odata.nextLink")

    def _task_path(self, task_id: str = "") -> str:
        base = self._path(f"todo/lists/{self._list_id}/tasks")
        return f"{base}/{task_id}" if task_id else base

    # --- reading -------------------------------------------------------------------------------

    def changes(self, state: str | None, known: Mapping[str, str | None]) -> RemoteChanges:
        listed = self.listing(state, known)
        items, gone = self._read(listed.changed)
        deleted = listed.deleted + [ref for ref in gone if ref in known and ref not in listed.deleted]
        return RemoteChanges(items, deleted, listed.state, listed.total)

    def listing(self, state: str | None, known: Mapping[str, str | None]) -> RemoteListing:
        """Implements :class:`syncd.connectors.base.Paging`: the refs the delta rows name whose changeKey
        (etag) differs from what the engine knows, read later with :meth:`fetch` a page at a time; the
        deletions are confirmed here (one ``$batch`` of ``$select=id`` GETs per twenty)."""
        self._copies.expect(())  # a new pass: copies read for the last one's updates may be stale
        saved = _load_state(state)
        # A deltaLink belongs to the calendar or list it was made for: another one is listed afresh.
        if saved.calendar is None or saved.calendar[0] != self._settings.calendar:
            saved.events = None
        if saved.task_list is None or saved.task_list[0] != str(self._settings.tasks):
            saved.tasks = None
        calendar = self._calendar(saved)
        now = self._clock()
        window = saved.window
        if window is None or datetime.fromisoformat(window[1]) - now < REBASE:
            window = ((now - PAST).date().isoformat() + "T00:00:00Z", (now + FUTURE).date().isoformat() + "T00:00:00Z")
            saved.events = None
        events = self._event_delta(calendar, saved.events, window)
        listings = {"events": events}
        if self._tasks_enabled():
            self._list(saved)
            listings["tasks"] = self._task_delta(saved.tasks)
        known_events = {r: e for r, e in known.items() if not r.startswith(TASK_PREFIX)}
        known_tasks = {r: e for r, e in known.items() if r.startswith(TASK_PREFIX)}
        series = set(saved.series)
        to_read: dict[str, str | None] = {}
        doubtful: set[str] = set()
        for name, listing in listings.items():
            mine = known_tasks if name == "tasks" else known_events
            for ref, key in listing.changed.items():
                if key is None or key != mine.get(ref):
                    to_read[ref] = key
            if listing.full:
                doubtful |= {ref for ref in mine if ref not in listing.changed}
            else:
                doubtful |= {ref for ref in listing.removed if ref in mine}
                if name == "events" and listing.removed - set(mine):
                    # An occurrence row removed: its series changed or went; the ids do not say which.
                    doubtful |= {ref for ref in series if ref in mine}
        deleted, changed_keys = self._confirm(doubtful - set(to_read), known)
        to_read.update(changed_keys)
        # The series are known from the rows (an occurrence's or exception's seriesMasterId), not from
        # the masters' bodies: those are read after this state is handed out.
        saved.series = sorted((series - set(deleted)) | events.series)
        saved.events, saved.window = events.link, window
        saved.calendar = (self._settings.calendar, calendar)
        if "tasks" in listings:
            saved.tasks = listings["tasks"].link
            saved.task_list = (str(self._settings.tasks), self._list_id or "")
        total = None
        if all(listing.full for listing in listings.values()):
            total = sum(len(listing.changed) for listing in listings.values())
        return RemoteListing(list(to_read), deleted, saved.dump(), total)

    def _event_delta(self, calendar: str, link: str | None, window: tuple[str, str]) -> _Listing:
        listing = self._delta(link, "events") if link else None
        if listing is not None:
            return listing
        start = self._path(f"{calendar}/calendarView/delta")
        listing = self._delta(None, "events", start, {"startDateTime": window[0], "endDateTime": window[1]})
        assert listing is not None
        return listing

    def _task_delta(self, link: str | None) -> _Listing:
        listing = self._delta(link, "tasks") if link else None
        if listing is not None:
            return listing
        listing = self._delta(None, "tasks", self._task_path("delta"))
        assert listing is not None
        return listing

    def _delta(
        self, link: str | None, area: str, start: str | None = None, params: dict[str, str] | None = None
    ) -> _Listing | None:
        """The rows since ``link`` (a full listing from ``start`` when no link); ``None`` when Graph no
        longer knows the link (410)."""
        listing = _Listing(full=link is None)
        url: str | None = link or start
        first = True
        while url:
            answer = self._session.call("GET", url, params=params if first and link is None else None, headers=_PAGE)
            first = False
            if answer.status == 410 and link is not None:
                log.info("graph delta token expired; listing again", area=area, code=answer.code())
                return None
            self._session.raise_for(answer, area=area)
            for row in answer.body.get("value") or ():
                self._row(row, area, listing)
            url = answer.body.get("@odata.nextLink")
            listing.link = answer.body.get("@odata.deltaLink") or listing.link
        return listing

    @staticmethod
    def _row(row: dict[str, Any], area: str, listing: _Listing) -> None:
        ident = str(row.get("id") or "")
        if area == "tasks":
            ref = TASK_PREFIX + ident
            if "@removed" in row:
                listing.removed.add(ref)
            else:
                listing.changed[ref] = row.get("@odata.etag")
            return
        if "@removed" in row:
            listing.removed.add(ident)
            return
        master = row.get("seriesMasterId")
        if master:
            listing.series.add(str(master))
            # Occurrence and exception rows: the series changed; its master is what the engine syncs.
            if row.get("type") == "occurrence" and master not in listing.changed:
                listing.changed[str(master)] = row.get("changeKey")
            else:
                listing.changed[str(master)] = None
        else:
            listing.changed[ident] = row.get("changeKey")

    def _confirm(self, refs: Iterable[str], known: Mapping[str, str | None]) -> tuple[list[str], dict[str, None]]:
        """(refs Graph no longer has, refs still there whose changeKey moved)."""
        refs = sorted(refs)
        if not refs:
            return [], {}
        if self._tasks_enabled() and any(r.startswith(TASK_PREFIX) for r in refs):
            self._list()
        subs = [{"method": "GET", "url": "/" + self._item_url(ref, select=True)} for ref in refs]
        deleted: list[str] = []
        moved: dict[str, None] = {}
        for ref, answer in zip(refs, self._session.batch(subs), strict=True):
            if answer.status == 404:
                deleted.append(ref)
            elif answer.ok:
                key = answer.body.get("@odata.etag") if ref.startswith(TASK_PREFIX) else answer.body.get("changeKey")
                if key != known.get(ref):
                    moved[ref] = None
            else:
                self._session.raise_for(answer, area="tasks" if ref.startswith(TASK_PREFIX) else "calendar")
        return deleted, moved

    def _item_url(self, ref: str, select: bool = False) -> str:
        if ref.startswith(TASK_PREFIX):
            url = self._task_path(quote(ref.removeprefix(TASK_PREFIX), safe=""))
            return url + ("?$select=id" if select else "?$expand=extensions,linkedResources")
        url = self._path(f"events/{quote(ref, safe='')}")
        return url + ("?$select=id,changeKey" if select else f"?$select={_SELECT}&$expand={_EXPAND}")

    def fetch(self, refs: Sequence[str]) -> list[RemoteItem]:
        found, _ = self._read(list(dict.fromkeys(refs)))
        return found

    def _read(self, refs: Sequence[str]) -> tuple[list[RemoteItem], list[str]]:
        """(the items read, the refs Graph no longer has)."""
        if not refs:
            return [], []
        if any(r.startswith(TASK_PREFIX) for r in refs):
            self._list()
        subs = [{"method": "GET", "url": "/" + self._item_url(ref), "headers": _UTC} for ref in refs]
        items: list[RemoteItem] = []
        gone: list[str] = []
        for ref, answer in zip(refs, self._session.batch(subs), strict=True):
            if answer.status == 404:
                gone.append(ref)
                continue
            if not answer.ok:
                items.append(RemoteItem(ref, None, None, None, None, error=self._item_error(ref, answer)))
                continue
            items.append(self._parse(ref, answer.body))
        return items, gone

    def _item_error(self, ref: str, answer: Answer) -> str:
        try:
            self._session.raise_for(answer, ref, area="tasks" if ref.startswith(TASK_PREFIX) else "calendar")
        except ItemError as exc:
            return str(exc)
        return f"{ref}: Microsoft Graph answered {answer.status}"

    def _parse(self, ref: str, body: dict[str, Any]) -> RemoteItem:
        is_task = ref.startswith(TASK_PREFIX)
        etag = body.get("@odata.etag") if is_task else body.get("changeKey")

        def parse() -> RemoteItem:
            parsed = task_from_graph(body, self._ctx) if is_task else event_from_graph(body, self._ctx)
            return remote_item(ref, etag, parsed, _Fetched(body, parsed.activity))

        crm = gp.properties(body).get(gp.CRM_ID) if not is_task else (extension_of(body) or {}).get("crmId")
        return read_isolated(ref, etag, parse, crm_id=crm, raw=_Fetched(body, None))

    def find(self, crm_id: str, kind: Kind) -> RemoteItem | None:
        if kind == Kind.TASK:
            if not self._tasks_enabled():
                return None
            self._list()
            for page in self._pages_for("tasks", self._task_path(), {"$expand": "extensions"}):
                for task in page.get("value") or ():
                    if (extension_of(task) or {}).get("crmId") == crm_id:
                        found, _ = self._read([TASK_PREFIX + str(task["id"])])
                        return found[0] if found else None
            return None
        literal = crm_id.replace("'", "''")
        query = {
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{gp.CRM_ID}' and ep/value eq '{literal}')",
            "$select": "id",
        }
        for page in self._pages_for("calendar", self._path(f"{self._calendar()}/events"), query):
            for event in page.get("value") or ():
                found, _ = self._read([str(event["id"])])
                return found[0] if found else None
        return None

    # --- writing -------------------------------------------------------------------------------

    def create(self, activity: Activity) -> WriteResult:
        sub = self._create_request(activity)
        # An event create carries its transactionId, so it may be sent again when its answer is lost; To
        # Do has no transactionId: a task create is sent once (the engine's look-up, find, recovers it).
        answer = self._session.call("POST", sub["url"].lstrip("/"), body=sub["body"], headers=sub["headers"],
                                    idempotent=activity.is_event)
        return self._created(activity, answer)

    def create_many(self, activities: Sequence[Activity]) -> list[WriteResult | SyncdError]:
        """Create items in ``$batch`` requests of 20; in input order, a WriteResult or the item's own
        error for each. Events and tasks go in separate batches: a batch of event creates (each with
        its transactionId) may be sent again after a lost answer, one of task creates may not."""
        results: list[WriteResult | SyncdError | None] = [None] * len(activities)
        groups: dict[bool, list[tuple[int, dict[str, Any]]]] = {True: [], False: []}
        for index, activity in enumerate(activities):
            try:
                groups[activity.is_event].append((index, self._create_request(activity)))
            except Exception as exc:  # noqa: BLE001 - one item's mapping must not sink the batch
                results[index] = item_failure(activity.id, exc, "mapping it to Microsoft Graph")
        for is_event, group in groups.items():
            if not group:
                continue
            answers = self._session.batch([sub for _, sub in group], idempotent=is_event)
            for (index, _), answer in zip(group, answers, strict=True):
                activity = activities[index]
                try:
                    results[index] = self._created(activity, answer)
                except SyncdError as exc:
                    results[index] = exc
        done = [r for r in results if r is not None]
        assert len(done) == len(activities)
        return done

    def _create_request(self, activity: Activity) -> dict[str, Any]:
        """The POST of a new event or task, as a ``$batch`` sub-request."""
        if activity.is_event:
            body = event_to_graph(activity, self._ctx, invitations=self._invitations)
            body["transactionId"] = self._transaction_id(activity, body)
            if body.get("recurrence") is None:
                body.pop("recurrence")
            return {"method": "POST", "url": "/" + self._path(f"{self._calendar()}/events"), "body": body,
                    "headers": {"Content-Type": "application/json", **_UTC}}
        self._list()
        body = {k: v for k, v in task_to_graph(activity, self._ctx).items() if v is not None}
        body["linkedResources"] = [task_link(activity, self._ctx)]
        body["extensions"] = [task_extension(activity)]
        return {"method": "POST", "url": "/" + self._task_path(), "body": body,
                "headers": {"Content-Type": "application/json"}}

    def _created(self, activity: Activity, answer: Answer) -> WriteResult:
        area = "calendar" if activity.is_event else "tasks"
        self._session.raise_for(answer, activity.id, area=area)
        if not activity.is_event:
            return WriteResult(TASK_PREFIX + str(answer.body["id"]), answer.body.get("@odata.etag"))
        ref = str(answer.body["id"])
        changekey = self._write_occurrences(ref, answer.body, occurrence_changes(activity, service="graph"))
        return WriteResult(ref, changekey or answer.body.get("changeKey"))

    def _transaction_id(self, activity: Activity, body: dict[str, Any]) -> str:
        """Stable for this create of this activity: the same mailbox, CRM id and content give the same id,
        so Graph answers a repeated create with the event it already made."""
        content = json.dumps(body, sort_keys=True, default=str)
        digest = hashlib.sha256(content.encode()).hexdigest()
        return str(uuid.uuid5(_TX_NAMESPACE, f"{self._user.casefold()}\n{activity.id}\n{digest}"))

    def prefetch(self, refs: Sequence[str]) -> None:
        """Implements :class:`syncd.connectors.base.Prefetching`: the items these updates write over are
        read in one ``$batch`` of 20 GETs as the updates reach them, not in a ``$batch`` each."""
        self._copies.expect(refs)

    def _read_for_updates(self, refs: Sequence[str]) -> list[RemoteItem]:
        """One ``$batch`` for ``refs``; an item Graph answers with an error is left out: its update reads
        it alone and meets that error."""
        found, _ = self._read(refs)
        return [item for item in found if isinstance(item.raw, _Fetched)]

    def update(self, ref: str, etag: str | None, activity: Activity, raw: object = None) -> WriteResult:
        """Writes over the item as Graph holds it (other clients' properties survive): the feed's copy
        (``raw``), else the batch's copy at the engine's changeKey / etag, else the item read now. The
        write's If-Match carries the engine's changeKey / etag: a change since is a 412."""
        fetched = raw if isinstance(raw, _Fetched) and _ref_of(raw.item, ref) == ref else None
        if fetched is None:
            copy = self._copies.take(ref, etag)
            fetched = copy.raw if copy is not None and isinstance(copy.raw, _Fetched) else None
        if fetched is None:
            found, _ = self._read([ref])
            if not found or not isinstance(found[0].raw, _Fetched):
                raise NotFound(ref)
            fetched = found[0].raw
        if ref.startswith(TASK_PREFIX):
            return self._update_task(ref, etag, activity, fetched)
        current = fetched.item
        wanted = event_to_graph(activity, self._ctx, invitations=self._invitations)
        patch = event_patch(current, wanted)
        changekey = etag or current.get("changeKey")
        body = current
        if patch:
            headers = {**_UTC, "If-Match": f'W/"{changekey}"'}
            answer = self._session.call("PATCH", self._path(f"events/{quote(ref, safe='')}"), body=patch,
                                        headers=headers)
            self._session.raise_for(answer, ref)
            body = answer.body
            changekey = body.get("changeKey")
        # A rewritten pattern drops every exception: then all of them are written again.
        rewritten = "recurrence" in patch or "start" in patch
        recurrence = None if rewritten or fetched.activity is None else fetched.activity.recurrence
        held = [at for at in (gp.instant(o.get("originalStart")) for o in current.get("exceptionOccurrences") or ())
                if at is not None]
        changes = occurrence_changes(activity, recurrence, service="graph", shown=fetched.activity, exceptions=held)
        written = self._write_occurrences(ref, body, changes)
        return WriteResult(ref, written or changekey)

    def _update_task(self, ref: str, etag: str | None, activity: Activity, fetched: _Fetched) -> WriteResult:
        self._list()
        current = fetched.item
        ext = extension_of(current) or {}
        patch = task_patch(current, task_to_graph(activity, self._ctx))
        path = self._task_path(quote(ref.removeprefix(TASK_PREFIX), safe=""))
        new_etag = etag or current.get("@odata.etag")
        if patch:
            answer = self._session.call("PATCH", path, body=patch, headers={"If-Match": str(new_etag)})
            self._session.raise_for(answer, ref, area="tasks")
            new_etag = answer.body.get("@odata.etag")
        wanted_ext = task_extension(activity)
        if any(ext.get(k) != wanted_ext[k] for k in ("crmId", "kind", "extra")):
            if ext:
                answer = self._session.call("PATCH", f"{path}/extensions/{EXTENSION}", body=wanted_ext, idempotent=True)
            else:
                answer = self._session.call("POST", f"{path}/extensions", body=wanted_ext)
            self._session.raise_for(answer, ref, area="tasks")
        link, wanted_link = link_of(current), task_link(activity, self._ctx)
        if link is None:
            answer = self._session.call("POST", f"{path}/linkedResources", body=wanted_link)
            self._session.raise_for(answer, ref, area="tasks")
        elif any(link.get(k) != v for k, v in wanted_link.items()):
            answer = self._session.call(
                "PATCH", f"{path}/linkedResources/{quote(str(link['id']), safe='')}", body=wanted_link, idempotent=True
            )
            self._session.raise_for(answer, ref, area="tasks")
        return WriteResult(ref, new_etag)

    def _write_occurrences(self, master: str, body: dict[str, Any], changes: Sequence[OccurrenceChange]) -> str | None:
        """Cancel and modify occurrences of a master just written, found among its instances; returns
        the master's changeKey after (each occurrence write changes it)."""
        if not changes:
            return None
        starts = [_utc_start(c.original_start) for c in changes]
        window = {
            "startDateTime": (min(starts) - timedelta(days=1)).isoformat(),
            "endDateTime": (max(starts) + timedelta(days=2)).isoformat(),
            "$select": "id,originalStart,start,type",
        }
        instances: dict[datetime, str] = {}
        path = self._path(f"events/{quote(master, safe='')}/instances")
        for page in self._pages_for("calendar", path, window):
            for inst in page.get("value") or ():
                at = gp.instant(inst.get("originalStart"))
                if at is not None:
                    instances[at] = str(inst["id"])
        zone = (body.get("originalStartTimeZone") or (body.get("start") or {}).get("timeZone") or "UTC")
        all_day = bool(body.get("isAllDay"))
        for change, at in zip(changes, starts, strict=True):
            occurrence = instances.get(at) or _by_day(instances, change.original_start)
            if occurrence is None:
                raise ItemError(master, "EXDATE", f"Graph shows no occurrence starting {change.original_start}")
            url = self._path(f"events/{quote(occurrence, safe='')}")
            if change.delete:
                answer = self._session.call("DELETE", url)
                if answer.status != 404:
                    self._session.raise_for(answer, master)
                continue
            fields = _occurrence_fields(change, zone, all_day, self._ctx)
            if not fields:
                continue  # nothing of its own to write (an empty PATCH would still make it an exception)
            answer = self._session.call("PATCH", url, body=fields, headers=_UTC, idempotent=True)
            self._session.raise_for(answer, master)
        answer = self._session.call("GET", self._path(f"events/{quote(master, safe='')}"),
                                    params={"$select": "id,changeKey"})
        self._session.raise_for(answer, master)
        return str(answer.body.get("changeKey"))

    def delete(self, ref: str, etag: str | None) -> None:
        # Deleted Items, as Outlook does: a user can still get back what syncd removed. No If-Match, as
        # for EWS: the engine decided on the item as it read it, and a 412 would only delay the delete.
        if ref.startswith(TASK_PREFIX):
            self._list()
            path = self._task_path(quote(ref.removeprefix(TASK_PREFIX), safe=""))
            area = "tasks"
        else:
            path, area = self._path(f"events/{quote(ref, safe='')}"), "calendar"
        answer = self._session.call("DELETE", path)
        if answer.status != 404:
            self._session.raise_for(answer, ref, area=area)

    # --- housekeeping --------------------------------------------------------------------------

    def check(self) -> list[str]:
        """A token (Entra's verdict on the credential), its permissions, the calendar and the To Do list
        as the app sees them."""
        try:
            token = self._session.token()
        except RemoteError as exc:
            return [str(exc)]
        areas = ["calendar", "tasks"] if self._tasks_enabled() else ["calendar"]
        problems = [p for p in (self._session.missing_permission(a, token) for a in areas) if p]
        for area in areas:
            try:
                if area == "calendar":
                    self._probe(area, self._path(self._calendar()))
                else:
                    self._list()
            except RemoteError as exc:
                if str(exc) not in problems:
                    problems.append(str(exc))
        return problems

    def _probe(self, area: str, path: str) -> None:
        answer = self._session.call("GET", path, params={"$select": "id"})
        self._session.raise_for(answer, area=area)

    @property
    def location(self) -> str:
        tasks = f" and To Do list {self._settings.tasks!r}" if self._tasks_enabled() else ""
        return f"calendar {self._settings.calendar!r}{tasks} of mailbox {self._user} via {self._session.graph_url}"

    def close(self) -> None:
        self._session.close()


def _ref_of(item: dict[str, Any], ref: str) -> str:
    ident = str(item.get("id") or "")
    return TASK_PREFIX + ident if ref.startswith(TASK_PREFIX) else ident


def _utc_start(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _by_day(instances: Mapping[datetime, str], original: date | datetime) -> str | None:
    """An all-day occurrence by its date (Graph's originalStart is its midnight in the series' zone)."""
    if isinstance(original, datetime):
        return None
    hits = [ident for at, ident in instances.items() if abs(at - _utc_start(original)) < timedelta(hours=15)]
    return hits[0] if len(hits) == 1 else None


def _occurrence_fields(change: OccurrenceChange, zone: str, all_day: bool, ctx: MappingContext) -> dict[str, Any]:
    zone_name = zone if gp.zone_of(zone) is not None else "UTC"
    fields: dict[str, Any] = {}
    for name, value in (("start", change.start), ("end", change.end)):
        if value is None:
            continue
        if isinstance(value, datetime):
            fields[name] = gp.dtz(value, zone_name)
        else:
            fields[name] = gp.day_dtz(value, zone_name)
    if change.subject is not None:
        fields["subject"] = change.subject
    if change.location is not None:
        fields["location"] = {"displayName": change.location}
    if change.description is not None:
        fields["body"] = {"contentType": "text", "content": change.description}
    if all_day and fields.keys() & {"start", "end"}:
        fields["isAllDay"] = True
    fields.update(occurrence_patch(change, ctx.options))
    return fields
