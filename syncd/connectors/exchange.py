"""The Exchange connector: one mailbox's Calendar (appointments, calls) and Tasks folders over EWS.

Change detection is SyncFolderItems per folder with an ID-only shape: one request per folder when
nothing changed. The ItemIds whose ChangeKey differs from what the engine knows are the listing
(:class:`~syncd.connectors.base.Paging`); the engine reads them a page at a time with GetItem, a
hundred ids a request (every field, syncd's extended properties included), and the exception items
of a page's recurring masters with one more, so the mapping sees moved occurrences' subjects and
locations. An item GetItem refuses is that item's error.
A sync state Exchange no longer accepts (ErrorInvalidSyncStateData) makes both folders be listed
again from scratch; deletions are then the known refs that are missing, so nothing is duplicated.

Writes: CreateItem / UpdateItem / DeleteItem. Updates carry the ChangeKey with NeverOverwrite, so an
Outlook edit in between is ErrorIrresolvableConflict -> :class:`~syncd.errors.PreconditionFailed`.
An update writes over the item as read; the items the CRM changed and the feed brought no copy of are
read in one GetItem per hundred as the updates reach them (:meth:`ExchangeConnector.prefetch`).
A recurring master's deleted and modified occurrences are written after the master, occurrence by
occurrence (:func:`~syncd.mapping.ews_recurrence.occurrence_changes`). Meeting messages go out only
with ``send_invitations = true``.

Refs are EWS ItemIds, etags ChangeKeys. The opaque state is JSON: a sync state per folder and the
server build exchangelib learnt (so a binding without a configured ``version`` asks only once). That
a state covers syncd's own writes is the engine's business (it reads the feed again after writing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from exchangelib import (
    Account,
    Build,
    CalendarItem,
    EWSDate,
    EWSDateTime,
    Task,
    Version,
)
from exchangelib.errors import ErrorInvalidSyncStateData, ErrorItemNotFound
from exchangelib.folders import Calendar, Folder, Root, Tasks
from exchangelib.items import (
    ALL_OCCURRENCES,
    MOVE_TO_DELETED_ITEMS,
    NEVER_OVERWRITE,
    SEND_TO_ALL_AND_SAVE_COPY,
    SEND_TO_NONE,
)
from exchangelib.properties import Body

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
from syncd.connectors.exchange_session import (
    ExchangeSettings,
    close_account,
    open_account,
    translate,
    who,
)
from syncd.errors import ItemError, NotFound, RemoteError, SyncdError
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import (
    apply_to_ews,
    from_ews,
    register_extended_properties,
    to_ews,
)
from syncd.mapping.ews_fields import occurrence_fields_out
from syncd.mapping.ews_recurrence import OccurrenceChange, occurrence_changes
from syncd.model import Activity, Kind

__all__ = ["ExchangeConnector"]

STATE_VERSION = 1
#: EWS's largest SyncFolderItems page.
_PAGE = 512
#: Items read per GetItem before updates: exchangelib's ids per request (EWSService.CHUNK_SIZE).
_UPDATE_BATCH = 100
_FOLDERS = ("calendar", "tasks")


@dataclass(frozen=True, slots=True)
class _Fetched:
    """``RemoteItem.raw``: the item as read, and the activity it mapped to (its exceptions included)."""

    item: CalendarItem | Task
    activity: Activity | None


@dataclass(slots=True)
class _Listing:
    """One folder's changes: ItemId -> ChangeKey of items created or changed, and deleted ItemIds."""

    changed: dict[str, str | None] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    state: str | None = None


class ExchangeConnector:
    """Implements :class:`syncd.connectors.base.Connector` over EWS with exchangelib."""

    def __init__(self, settings: ExchangeSettings, ctx: MappingContext) -> None:
        register_extended_properties()
        self._ctx = ctx
        self._mailbox = settings.primary_smtp_address.casefold()
        self._who = who(settings)
        self._invitations = SEND_TO_ALL_AND_SAVE_COPY if settings.send_invitations else SEND_TO_NONE
        self._version_configured = bool(settings.version)
        with translate(self._who):
            self._account: Account = open_account(settings, ctx.default_timezone)
        self._root = root = Root(account=self._account)
        # Distinguished folder ids name the folders without a GetFolder round trip per pass.
        self._folders: dict[str, Calendar | Tasks] = {"calendar": Calendar(root=root), "tasks": Tasks(root=root)}
        for folder in self._folders.values():
            # Settles the folder's id now: exchangelib hashes folders while paging, and to_id() fills the
            # id lazily, which would change a folder's hash in the middle of a FindItem.
            folder.to_id()
        # GetItem's field set: every field of every item class (the ids may be calendar items or tasks).
        self._any_folder = Folder(root=root)
        self._copies = BatchedReads(_UPDATE_BATCH, self._read_for_updates, ref_of)

    def _folder_for(self, kind: Kind) -> Calendar | Tasks:
        return self._folders["tasks" if kind == Kind.TASK else "calendar"]

    # --- reading -------------------------------------------------------------------------------

    def changes(self, state: str | None, known: Mapping[str, str | None]) -> RemoteChanges:
        listed = self.listing(state, known)
        changed, gone = self._read(listed.changed)
        deleted = listed.deleted + [ref for ref in gone if ref in known and ref not in listed.deleted]
        return RemoteChanges(changed, deleted, listed.state, listed.total)

    def listing(self, state: str | None, known: Mapping[str, str | None]) -> RemoteListing:
        """Implements :class:`syncd.connectors.base.Paging`: SyncFolderItems' ItemIds whose ChangeKey
        differs from what the engine knows, read later with :meth:`fetch` a page at a time."""
        self._copies.expect(())  # a new pass: copies read for the last one's updates may be stale
        saved = _load_state(state)
        if saved.build and not self._version_configured:
            self._account.protocol.config.version = Version(build=saved.build)
        listings: dict[str, _Listing] | None = None
        if all(name in saved.folders for name in _FOLDERS):
            listings = {}
            for name in _FOLDERS:
                listing = self._list(name, saved.folders[name])
                if listing is None:
                    listings = None
                    break
                listings[name] = listing
        total: int | None = None
        if listings is None:
            # First pass, or Exchange forgot a sync state: list everything; the known refs that are
            # missing are the deletions.
            listings = {name: self._list(name, None) or _Listing() for name in _FOLDERS}
            present = {ref for listing in listings.values() for ref in listing.changed}
            deleted = [ref for ref in known if ref not in present]
            total = len(present)
        else:
            deleted = [ref for listing in listings.values() for ref in listing.deleted if ref in known]
        to_fetch = [
            ref
            for listing in listings.values()
            for ref, key in listing.changed.items()
            if key is None or key != known.get(ref)
        ]
        states = {name: listing.state for name, listing in listings.items()}
        return RemoteListing(to_fetch, deleted, _dump_state(states, self._account.version.build), total)

    def _list(self, name: str, sync_state: str | None) -> _Listing | None:
        """The folder's changes since ``sync_state`` (everything for ``None``); ``None`` if the state is refused."""
        folder = self._folders[name]
        folder.item_sync_state = None  # else exchangelib resumes from the last pass of this object
        listing = _Listing()
        with translate(self._who):
            try:
                for change, item in folder.sync_items(
                    sync_state=sync_state, only_fields=[], max_changes_returned=_PAGE
                ):
                    if change == "delete":
                        listing.deleted.append(item.id)
                        listing.changed.pop(item.id, None)
                    elif change in ("create", "update") and isinstance(item, (CalendarItem, Task)):
                        listing.changed[item.id] = item.changekey
            except ErrorInvalidSyncStateData:
                if sync_state is None:
                    raise
                return None
        listing.state = folder.item_sync_state
        return listing

    def fetch(self, refs: Sequence[str]) -> list[RemoteItem]:
        found, _ = self._read(list(dict.fromkeys(refs)))
        return found

    def _read(self, refs: Sequence[str]) -> tuple[list[RemoteItem], list[str]]:
        """(the items read, the refs Exchange no longer has): one GetItem per hundred, and one for the
        series' exceptions among them. An item Exchange refuses to read (denied, corrupt) comes back
        with its reason in ``error``: it costs that item only."""
        if not refs:
            return [], []
        with translate(self._who):
            results = list(self._account.fetch(ids=[(ref, None) for ref in refs], folder=self._any_folder))
        items: list[CalendarItem | Task] = []
        refused: list[RemoteItem] = []
        gone: list[str] = []
        for ref, result in zip(refs, results, strict=True):
            if isinstance(result, ErrorItemNotFound):
                gone.append(ref)
            elif isinstance(result, Exception):
                refused.append(self._refused(ref, result))
            elif isinstance(result, (CalendarItem, Task)):
                items.append(result)
        exceptions = self._exceptions(items)
        return [self._parse(item, exceptions.get(item.id, [])) for item in items] + refused, gone

    def _refused(self, ref: str, error: Exception) -> RemoteItem:
        """An item GetItem answered with an error of its own (the error is its ``raw``, for an update
        to raise); an error of the server's raises: the pass stops."""
        try:
            with translate(self._who, ref):
                raise error
        except ItemError as exc:
            return RemoteItem(ref, None, None, None, None, error=str(exc), raw=exc)

    def _exceptions(self, items: Iterable[CalendarItem | Task]) -> dict[str, list[CalendarItem]]:
        """The exception items of the recurring masters among ``items``, by master id (one GetItem)."""
        wanted = [
            (master.id, (occ.id, occ.changekey))
            for master in items
            if isinstance(master, CalendarItem)
            for occ in master.modified_occurrences or ()
        ]
        if not wanted:
            return {}
        with translate(self._who):
            results = list(self._account.fetch(ids=[ids for _, ids in wanted], folder=self._folders["calendar"]))
        found: dict[str, list[CalendarItem]] = {}
        for (master_id, _), result in zip(wanted, results, strict=True):
            if isinstance(result, CalendarItem):
                found.setdefault(master_id, []).append(result)
        return found

    def _parse(self, item: CalendarItem | Task, exceptions: Sequence[CalendarItem]) -> RemoteItem:
        def parse() -> RemoteItem:
            parsed = from_ews(item, self._ctx, occurrences=exceptions)
            return remote_item(item.id, item.changekey, parsed, _Fetched(item, parsed.activity))

        return read_isolated(
            item.id, item.changekey, parse, uid=getattr(item, "uid", None),
            crm_id=getattr(item, "syncd_crm_id", None), raw=_Fetched(item, None),
        )

    def find(self, crm_id: str, kind: Kind) -> RemoteItem | None:
        """FindItem restricted to syncd's CRM-id property: one request (plus a GetItem if found)."""
        folder = self._folder_for(kind)
        with translate(self._who):
            hits = [(i.id, i.changekey) for i in folder.filter(syncd_crm_id=crm_id).only("id", "changekey")]
        if not hits:
            return None
        found, _ = self._read([ref for ref, _ in hits[:1]])
        return found[0] if found else None

    # --- writing -------------------------------------------------------------------------------

    def create(self, activity: Activity) -> WriteResult:
        ref = activity.id
        item = to_ews(activity, self._ctx, self._ctx.default_timezone)
        item.account = self._account
        item.folder = self._folder_for(activity.kind)
        with translate(self._who, ref):
            if isinstance(item, CalendarItem):
                item.save(send_meeting_invitations=self._invitations)
            else:
                item.save()
        changekey = self._write_occurrences(item, occurrence_changes(activity))
        return WriteResult(item.id, changekey)

    def create_many(self, activities: Sequence[Activity]) -> list[WriteResult | SyncdError]:
        """Create items in batches (one CreateItem per folder and hundred items); in input order, a
        WriteResult or the item's own error for each. A failure of the whole request raises."""
        results: list[WriteResult | SyncdError | None] = [None] * len(activities)
        built: dict[int, CalendarItem | Task] = {}
        groups: dict[str, list[int]] = {}
        for index, activity in enumerate(activities):
            try:
                built[index] = to_ews(activity, self._ctx, self._ctx.default_timezone)
            except Exception as exc:  # noqa: BLE001 - one item's mapping must not sink the batch
                results[index] = item_failure(activity.id, exc, "mapping it to Exchange")
                continue
            groups.setdefault("tasks" if activity.kind == Kind.TASK else "calendar", []).append(index)
        for folder, indexes in groups.items():
            with translate(self._who):
                created = self._account.bulk_create(
                    folder=self._folders[folder], items=[built[i] for i in indexes],
                    send_meeting_invitations=self._invitations,
                )
            for index, answer in zip(indexes, created, strict=True):
                activity = activities[index]
                if isinstance(answer, Exception):
                    results[index] = ItemError(
                        activity.id, None, f"Exchange refused the item ({type(answer).__name__}: {answer})"
                    )
                    continue
                item = built[index]
                item.account, item.folder = self._account, self._folders[folder]
                item.id, item.changekey = answer.id, answer.changekey
                try:
                    changekey = self._write_occurrences(item, occurrence_changes(activity))
                except ItemError as exc:
                    results[index] = exc
                    continue
                results[index] = WriteResult(answer.id, changekey)
        done = [r for r in results if r is not None]
        assert len(done) == len(activities)
        return done

    def prefetch(self, refs: Sequence[str]) -> None:
        """Implements :class:`syncd.connectors.base.Prefetching`: the items these updates write over are
        read with one GetItem per hundred as the updates reach them, not with a GetItem each."""
        self._copies.expect(refs)

    def _read_for_updates(self, refs: Sequence[str]) -> list[RemoteItem]:
        """One GetItem for ``refs`` (and one for the series' exceptions among them). An item Exchange
        answers with an error (gone, denied) is left out: its update reads it alone and meets that error."""
        with translate(self._who):
            results = list(self._account.fetch(ids=[(ref, None) for ref in refs], folder=self._any_folder))
        items = [result for result in results if isinstance(result, (CalendarItem, Task))]
        exceptions = self._exceptions(items)
        return [self._parse(item, exceptions.get(item.id, [])) for item in items]

    def update(self, ref: str, etag: str | None, activity: Activity, raw: object = None) -> WriteResult:
        """Writes over the item as Exchange holds it (other clients' fields survive): the feed's copy
        (``raw``), else the batch's copy at the engine's ChangeKey, else the item read now. The write
        carries the engine's ChangeKey: a change since is ErrorIrresolvableConflict."""
        fetched = raw if isinstance(raw, _Fetched) and raw.item.id == ref else None
        if fetched is None:
            copy = self._copies.take(ref, etag)
            fetched = copy.raw if copy is not None and isinstance(copy.raw, _Fetched) else None
        if fetched is None:
            found, _ = self._read([ref])
            if found and isinstance(found[0].raw, ItemError):
                raise found[0].raw
            if not found or not isinstance(found[0].raw, _Fetched):
                raise NotFound(ref)
            fetched = found[0].raw
        item = fetched.item
        if etag is not None:
            item.changekey = etag
        if isinstance(item, Task) == activity.is_event:
            return self._replace(ref, etag, activity)
        changed = apply_to_ews(item, activity, self._ctx, self._ctx.default_timezone)
        if changed:
            with translate(self._who, ref):
                if isinstance(item, CalendarItem):
                    item.save(update_fields=changed, conflict_resolution=NEVER_OVERWRITE,
                              send_meeting_invitations=self._invitations)
                else:
                    item.save(update_fields=changed, conflict_resolution=NEVER_OVERWRITE)
        # A rewritten pattern drops every exception on Exchange: then all of them are written again.
        current = None if "recurrence" in changed or fetched.activity is None else fetched.activity.recurrence
        held = [  # as plain datetimes: exchangelib's convert only to its own zones
            datetime.fromtimestamp(o.original_start.timestamp(), UTC)
            for o in getattr(item, "modified_occurrences", None) or () if o.original_start
        ]
        changes = occurrence_changes(activity, current, fetched.activity, held)
        changekey = self._write_occurrences(item, changes)
        return WriteResult(item.id, changekey)

    def _replace(self, ref: str, etag: str | None, activity: Activity) -> WriteResult:
        """An appointment that became a task (or back) moves to the other folder: a new item."""
        result = self.create(activity)
        self.delete(ref, etag)
        return result

    def _write_occurrences(self, master: CalendarItem | Task, changes: Sequence[OccurrenceChange]) -> str | None:
        """Delete and modify occurrences of a master just written; returns the master's ChangeKey after."""
        if not changes or not isinstance(master, CalendarItem):
            return master.changekey
        ref = master.id
        with translate(self._who, ref):
            for change in changes:
                occurrence = master.occurrence(change.index)
                if change.delete:
                    occurrence.delete(send_meeting_cancellations=self._invitations)
                    continue
                fields = _occurrence_fields(change, self._ctx)
                if not fields:
                    continue  # exchangelib would write every field of the occurrence (and so pin them)
                occurrence.refresh()
                for name, value in fields.items():
                    setattr(occurrence, name, value)
                occurrence.save(update_fields=list(fields), conflict_resolution=NEVER_OVERWRITE,
                                send_meeting_invitations=self._invitations)
            # Each occurrence write changed the master's ChangeKey.
            [fresh] = list(self._account.fetch(ids=[(ref, None)], folder=self._folders["calendar"], only_fields=[]))
        if isinstance(fresh, Exception):
            with translate(self._who, ref):
                raise fresh
        return fresh.changekey

    def delete(self, ref: str, etag: str | None) -> None:
        # Deleted Items, not a hard delete: a user can still get back what syncd removed. Exchange does not
        # check a ChangeKey on delete, so none is sent.
        with translate(self._who, ref):
            [result] = self._account.bulk_delete(
                ids=[(ref, None)],
                delete_type=MOVE_TO_DELETED_ITEMS,
                send_meeting_cancellations=self._invitations,
                affected_task_occurrences=ALL_OCCURRENCES,
            )
            if isinstance(result, ErrorItemNotFound):
                return
            if isinstance(result, Exception):
                raise result

    # --- housekeeping --------------------------------------------------------------------------

    def check(self) -> list[str]:
        """GetFolder on the Calendar and Tasks folders, as the binding's login sees them."""
        problems: list[str] = []
        for cls in (Calendar, Tasks):
            try:
                with translate(self._who):
                    cls.get_distinguished(root=self._root)
            except RemoteError as exc:
                if str(exc) not in problems:  # a 401 fails both folders alike: say it once
                    problems.append(str(exc))
        return problems

    @property
    def location(self) -> str:
        return f"the calendar and tasks of mailbox {self._mailbox}"

    def close(self) -> None:
        close_account(self._account)


def _ews_moment(value: Any) -> EWSDateTime | EWSDate:
    if isinstance(value, datetime):
        return EWSDateTime.from_datetime(value.astimezone(UTC))
    assert isinstance(value, date)
    return EWSDate(value.year, value.month, value.day)


def _occurrence_fields(change: OccurrenceChange, ctx: MappingContext) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if change.status is not None or change.series_look:
        # IsCancelled is Exchange's own (set when an organizer cancels); a cancelled occurrence shows free.
        # An undone show-as of its own: what the series shows, also when it has neither show-as nor status.
        fields["legacy_free_busy_status"] = ctx.options.status_target(change.status).ews_free_busy
    if change.start is not None:
        fields["start"] = _ews_moment(change.start)
    if change.end is not None:
        fields["end"] = _ews_moment(change.end)
    if change.subject is not None:
        fields["subject"] = change.subject
    if change.location is not None:
        fields["location"] = change.location
    if change.description is not None:
        fields["body"] = Body(change.description)
    fields.update(occurrence_fields_out(change))  # after the status: a show-as of its own wins
    return fields


@dataclass(frozen=True, slots=True)
class _State:
    folders: dict[str, str] = field(default_factory=dict)
    build: Build | None = None


def _load_state(state: str | None) -> _State:
    """Anything unreadable means "list everything", never an error."""
    if not state:
        return _State()
    try:
        data = json.loads(state)
        if data.get("version") != STATE_VERSION:
            return _State()
        folders = {name: str(value) for name, value in data["folders"].items() if value}
        build = data.get("build")
        return _State(folders, Build(*[int(p) for p in build.split(".")]) if isinstance(build, str) else None)
    except (ValueError, TypeError, KeyError, AttributeError):
        return _State()


def _dump_state(states: Mapping[str, str | None], build: Build | None) -> str:
    data: dict[str, Any] = {"version": STATE_VERSION, "folders": dict(sorted(states.items()))}
    if build is not None:
        data["build"] = str(build)
    return json.dumps(data, sort_keys=True)
