"""One pass of one binding: gather what changed on each side, plan, then execute.

Safety properties, and where they come from:

* The mass-deletion guard (:class:`syncd.errors.SafetyStop`) decides before anything is written. A
  calendar's changed items are read, planned and written a page at a time (:data:`PAGE_SIZE`), so a
  pull holds one page of them, not the calendar; that needs the guard settled from refs and ids alone
  (:meth:`Runner._streamable`), else the pass reads every item and plans the whole before writing.
  What needs the whole pass is decided last, with the CRM's side: deletions, moved items, first-sync
  pairs.
* A CRM write and the link that records it commit in one transaction.
* Before a calendar item is created, a ``creating`` link is committed; a pass that finds one asks the
  connector whether the item exists (``find``) before creating it again, so a process killed between
  the remote write and the link commit never produces a duplicate.
* Cursors (the CRM change sequence, the calendar's sync state) are stored only at the end of a pass;
  a pass that dies is repeated from the old cursors, and every decision is made by comparing
  fingerprints with the link, so repeating it is harmless.
* An action that fails for one item is recorded (``sync_errors``) and retried next pass; a remote side
  that fails as a whole (5xx, timeout, 401) stops the pass without advancing anything.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator
from contextlib import closing, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from syncd.config import Binding
from syncd.connectors.base import Connector, RemoteChanges, RemoteItem, WriteResult
from syncd.engine.actions import (
    Action,
    PullCreate,
    PullDelete,
    PushCreate,
    PushDelete,
    PushUpdate,
    RecordConflict,
    Relink,
    Skip,
    Unlink,
    Write,
)
from syncd.engine.isolation import Isolation, ItemFault, next_attempt
from syncd.engine.links import Link, LinkStatus
from syncd.engine.plan import (
    ItemInput,
    Policy,
    Seen,
    decide,
)
from syncd.engine.sides import BindingState, CrmSide, ErrorInfo, SyncState
from syncd.engine.store_writes import StoreWrites
from syncd.errors import (
    AlreadyExists,
    ItemError,
    NotFound,
    PreconditionFailed,
    SafetyStop,
    SyncdError,
    ValidationError,
)
from syncd.logging import get_logger, scrub_text
from syncd.mapping.fingerprint import fingerprints
from syncd.model import EVENT_KINDS, Activity, Kind, ParticipantKind, Response
from syncd.store.rules import check_activity

log = get_logger("syncd.engine")

#: How often one item is re-read and re-decided after the calendar changed under a write (412).
MAX_RACES = 3
#: How often a pass reads the calendar's feed again after writing to it, before it leaves the rest
#: to the next pass.
MAX_ROUNDS = 3
REMOTE_WRITES = ("remote_created", "remote_updated", "remote_deleted")
#: Creates per request for a connector that batches them (exchangelib's own page size).
BATCH_SIZE = 100
#: Items whose actions write only the store, committed in one transaction: a page's worth, since a
#: transaction's own cost (its reads of people, rows and links, its commit) was most of a pull's
#: store writes at 100 (a page of a pull in five transactions).
STORE_BATCH = 500
#: Changed calendar items read, planned and executed together: what a pass holds of a calendar that
#: changed as a whole (a first pull), whatever its size.
PAGE_SIZE = 500
#: Actions of a pass kept in words in its report (all of a dry run's, whose report is its plan).
PLAN_SHOWN = 100
REMOTE_KEY = "remote:"
#: How far the sync window's edges move before the CRM is searched for what entered it: an activity
#: reaches the calendar at most this late, and a busy daemon runs that query at most this often.
WINDOW_STEP = timedelta(hours=1)


@dataclass(slots=True)
class PassReport:
    binding: str
    pass_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    result: str = "ok"
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    """This pass's item errors, ``key: reason``."""
    faults: list[ItemFault] = field(default_factory=list)
    items_in_error: int = 0
    """Items of the binding in error after this pass (this pass's and older ones not yet retried)."""
    error: str | None = None
    plan: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """The pass failed as a whole (nothing advanced); item errors alone do not fail a pass."""
        return self.result != "ok"

    @property
    def partial(self) -> bool:
        """The pass ran, but some items failed in it."""
        return not self.failed and bool(self.faults)


def policy_for(binding: Binding) -> Policy:
    return Policy(
        owner=binding.owner.casefold(),
        direction=binding.direction,
        conflict=binding.conflict,
        crm_wins_clash=binding.merge_winner == "crm",
        on_remote_delete=binding.on_remote_delete,
        cancel_status=binding.cancel_status,
        on_remote_delete_completed=binding.on_remote_delete_completed,
        registered_statuses=frozenset(s.casefold() for s in binding.registered_statuses),
    )


def _instant(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _known(links: dict[str, Link]) -> dict[str, str | None]:
    return {link.ref: link.etag for link in links.values() if link.ref}


def in_window(activity: Activity, start: datetime, end: datetime) -> bool:
    """Whether any occurrence of the activity falls in [start, end); undated tasks always do."""
    first = activity.start if activity.start is not None else activity.due
    if first is None:
        return True
    if activity.recurrence is not None:
        from syncd.mapping.occurrences import has_occurrence

        # Stops at the first occurrence in the window: a rule that expands forever costs what the
        # window holds (and a documented cap), never what the rule says.
        return has_occurrence(activity, start, end)
    last = activity.effective_end or first
    return _instant(first) < end and _instant(last) >= start


def _placed(item: RemoteItem, by_ref: dict[str, Link], links: dict[str, Link]) -> tuple[str, Link | None]:
    """The key a changed calendar item is decided under, and, for an item found under another href
    than its activity's link (moved, or a second copy), that link."""
    link = by_ref.get(item.ref)
    # syncd's id on the item, else the id an item made in the calendar got from its UID.
    ident = item.crm_id or (item.activity.id if item.activity is not None else None)
    if link is None and ident in links:
        other = links[ident]
        if other.ref and other.ref != item.ref and other.status != LinkStatus.CREATING:
            return other.activity_id, other
        link = other
    return (link.activity_id if link else (item.crm_id or f"{REMOTE_KEY}{item.ref}")), None


def _signature(a: Activity) -> tuple[str, str, str, str]:
    """What pairs a calendar item syncd did not make with an unlinked activity on a first sync."""
    def moment(v: date | datetime | None) -> str:
        if v is None:
            return ""
        return _instant(v).astimezone(UTC).isoformat() if isinstance(v, datetime) else v.isoformat()
    return a.kind.value, (a.subject or "").strip().casefold(), moment(a.start or a.due), moment(a.effective_end)


def _may_pair(item: RemoteItem, pairable: set[tuple[str, str, str, str]]) -> bool:
    """A calendar-made item that may be an unlinked activity (or whose signature fails, which the last
    gather's pairing records)."""
    if item.activity is None or not pairable:
        return False
    try:
        return _signature(item.activity) in pairable
    except Exception:  # noqa: BLE001 - recorded against the item by the pairing it is kept for
        return True


def _store_only(action: Action) -> bool:
    """An action that writes the store and not the calendar: many of them commit in one transaction."""
    return isinstance(action, PullCreate | PullDelete | Unlink | Relink) or (
        isinstance(action, Write) and not action.push
    )


class Runner:
    """Runs passes of one binding against one connector."""

    def __init__(
        self,
        binding: Binding,
        connector: Connector,
        crm: CrmSide,
        state: SyncState,
        *,
        worker: str = "local",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.binding = binding
        self.connector = connector
        self.crm = crm
        self.state = state
        self.policy = policy_for(binding)
        self.worker = worker
        self.clock = clock
        self.progress = progress
        """Called with (actions started, actions planned) as a pass executes its plan."""
        self._iso = Isolation(binding.name, state.store_failure)
        self._done = self._total = 0

    # -- gathering -------------------------------------------------------------------------------

    def _in_scope(self, activity: Activity) -> tuple[bool, bool]:
        """(belongs in this calendar, only as a copy for a participating user)."""
        owner = self.policy.owner
        if activity.kind not in self.binding.kinds:
            return False, False
        if activity.owner.casefold() == owner:
            return True, False
        # A user who declined no longer sees the meeting, as in Outlook: no copy for them.
        takes_part = any(
            p.kind == ParticipantKind.USER and p.key == owner and p.response != Response.DECLINED
            for p in activity.participants
        )
        return takes_part, takes_part

    def _window(self) -> tuple[datetime, datetime]:
        now = self.clock()
        return now - timedelta(days=self.binding.past_days), now + timedelta(days=self.binding.future_days)

    def _importable(self, remote: RemoteItem, window: tuple[datetime, datetime]) -> bool:
        how = self.binding.import_remote
        if how == "none" or remote.activity is None:
            return False
        if remote.activity.kind not in self.binding.kinds:
            return False
        if how == "category":
            wanted = (self.binding.import_category or "").casefold()
            if wanted not in {c.casefold() for c in remote.categories}:
                return False
        return in_window(remote.activity, *window)

    def _crm_keys(self, bstate: BindingState, links: dict[str, Link], deferred: set[str]) -> set[str]:
        """The activities this pass must look at from the CRM's side (read once per pass)."""
        keys: set[str] = set()
        if bstate.crm_cursor is None:
            keys.update(self.crm.in_scope(self.policy.owner, self.binding.kinds))
        else:
            changes = self.crm.changes_for(bstate.crm_cursor, self.policy.owner, self.binding.name)
            keys.update(changes.changed)
            keys.update(changes.deleted & links.keys())
        keys.update(k for k in bstate.retry - deferred if not k.startswith(REMOTE_KEY))
        keys.update(k for k, link in links.items() if link.status != LinkStatus.SYNCED and k not in deferred)
        return keys

    def _entering(self, bstate: BindingState, links: dict[str, Link]) -> tuple[set[str], tuple[datetime, datetime]]:
        """Activities that time (or a wider ``past_days``/``future_days``) brought into the sync window
        since the last pass searched it, and the window to remember. Only the ranges the window's
        edges moved across are searched, so the cost follows what enters, not what the CRM holds."""
        start, end = self._window()
        if bstate.window_start is None or bstate.window_end is None:
            # A first pass reads everything in scope anyway; a store upgraded from a syncd that kept
            # no window is searched once as a whole.
            ranges = [] if bstate.crm_cursor is None else [(start, end)]
            return self._unlinked(ranges, links), (start, end)
        ranges, new_start, new_end = [], bstate.window_start, bstate.window_end
        if end - new_end >= WINDOW_STEP:
            ranges.append((new_end, end))
            new_end = end
        elif end < new_end:
            new_end = end
        if new_start - start >= WINDOW_STEP:
            ranges.append((start, new_start))
            new_start = start
        elif start > new_start:
            new_start = start
        return self._unlinked(ranges, links), (new_start, new_end)

    def _unlinked(self, ranges: list[tuple[datetime, datetime]], links: dict[str, Link]) -> set[str]:
        if not ranges:
            return set()
        return self.crm.entering(self.policy.owner, self.binding.kinds, ranges) - links.keys()

    def _uncovered(self, bstate: BindingState, links: dict[str, Link]) -> set[str]:
        """Links written after the saved calendar state was read: a pass that failed or died after
        writing saved no newer state, and a feed from the older one may never mention an item syncd
        created after it and a user deleted since. Those items are read back one by one."""
        if bstate.remote_state is None or bstate.remote_state_at is None:
            return set()
        return self.state.written_since(self.binding.name, bstate.remote_state_at) & links.keys()

    def _gather(
        self, crm_keys: set[str], bstate: BindingState, links: dict[str, Link], remote: RemoteChanges, first: bool,
        deferred: set[str], known: dict[str, Activity] | None = None, handled: set[str] | frozenset[str] = frozenset(),
    ) -> dict[str, ItemInput]:
        """The inputs of every item this pass (or page) looks at. ``known``: CRM activities read already;
        ``handled``: keys that pages of this pass settled (:meth:`_stream`), not looked at again."""
        iso = self._iso
        by_ref = {link.ref: link for link in links.values() if link.ref}
        keys = set(crm_keys) - handled
        remote_for: dict[str, RemoteItem] = {}
        seen: dict[str, Seen] = {}
        elsewhere: list[tuple[RemoteItem, Link]] = []
        for item in remote.changed:
            key, other = _placed(item, by_ref, links)
            if other is not None:
                elsewhere.append((item, other))
                continue
            remote_for[key], seen[key] = item, Seen.CHANGED
        moved = self._moved(elsewhere, set(remote.deleted))
        for item, other in elsewhere:
            key = other.activity_id
            if key not in moved:
                iso.fail(f"{REMOTE_KEY}{item.ref}", "pairing", f"a second calendar item for activity {key}; left alone")
                continue
            # The same item under another href (a server that renames what it stores): the link follows
            # it. Its etag was the old href's, so the link is saved again with the new one.
            links[key] = other.with_(ref=item.ref, etag=None)
            remote_for[key], seen[key] = item, Seen.CHANGED
        for ref in remote.deleted:
            link = by_ref.get(ref)
            if link is not None and link.activity_id not in moved:
                seen[link.activity_id] = Seen.DELETED
        keys.update(seen)

        # Items the feed did not report but that this pass must look at again: retries that are due,
        # forced resolutions, links the saved state may not cover, and creates a crash may have
        # interrupted.
        if first:
            retry = bstate.retry - deferred - handled
            uncovered = self._uncovered(bstate, links) - seen.keys() - handled
            refetch: dict[str, str] = {}
            for k in keys | uncovered:
                known_ref = links[k].ref if k in links else None
                if known_ref and k not in seen and (
                    k in retry or k in uncovered
                    or links[k].status in (LinkStatus.RESOLVE_CRM, LinkStatus.RESOLVE_REMOTE)
                ):
                    refetch[known_ref] = k
            for ref in retry:
                if ref.startswith(REMOTE_KEY):
                    refetch.setdefault(ref.removeprefix(REMOTE_KEY), ref)
            for item in self.connector.fetch(list(refetch)) if refetch else []:
                link = by_ref.get(item.ref)
                key = link.activity_id if link else (item.crm_id or f"{REMOTE_KEY}{item.ref}")
                remote_for[key], seen[key] = item, Seen.CHANGED
                keys.add(key)
            for key in refetch.values():
                if key in uncovered and key not in seen:
                    seen[key] = Seen.DELETED
                    keys.add(key)
            for key, link in list(links.items()):
                # Only creates this pass looks at: an item in error waits for its back-off.
                if link.status == LinkStatus.CREATING and key in keys and key not in remote_for:
                    with iso.guard(key, "looking up an interrupted create"):
                        found = self.connector.find(key, link.kind)
                        if found is not None:
                            remote_for[key], seen[key] = found, Seen.CHANGED
                            links[key] = link.with_(ref=found.ref, etag=found.etag)
                            keys.add(key)

        crm_ids = [k for k in keys if not k.startswith(REMOTE_KEY)]
        known = known or {}
        activities = {k: known[k] for k in crm_ids if k in known}
        activities.update(self.crm.load([k for k in crm_ids if k not in known and k not in iso], iso.guard))
        # An activity whose row could not be read is not a deleted one: it is left out of this pass.
        tombstones = self.crm.deleted(k for k in crm_ids if k not in activities and k not in links and k not in iso)
        window = self._window()
        items: dict[str, ItemInput] = {}
        for key in keys:
            if key in iso:
                continue
            with iso.guard(key, "gathering"):
                activity = activities.get(key)
                scope, copy = self._in_scope(activity) if activity else (False, False)
                remote_item = remote_for.get(key)
                items[key] = ItemInput(
                    key=key,
                    link=links.get(key),
                    crm=activity,
                    crm_in_scope=scope,
                    crm_is_copy=copy,
                    crm_completed=bool(activity and self.crm.is_completed(activity)),
                    crm_in_window=bool(activity and (key in links or in_window(activity, *window))),
                    remote=remote_item,
                    seen=seen.get(key, Seen.UNSEEN),
                    importable=bool(remote_item and self._importable(remote_item, window)),
                    crm_tombstone=key in tombstones,
                )
        self._pair_first_sync(items, links)
        return items

    def _moved(self, elsewhere: list[tuple[RemoteItem, Link]], deleted: set[str]) -> set[str]:
        """Activities whose linked item turned up at another href and is gone from the old one (the
        feed said so, or one batched read of the old hrefs finds nothing there)."""
        if not elsewhere:
            return set()
        unsure = [other.ref for _, other in elsewhere if other.ref and other.ref not in deleted]
        still_there = {found.ref for found in self.connector.fetch(unsure)} if unsure else set()
        return {other.activity_id for _, other in elsewhere if other.ref not in still_there}

    def _pair_first_sync(self, items: dict[str, ItemInput], links: dict[str, Link]) -> None:
        """A calendar item syncd did not make, with the same subject, start and end as an unlinked CRM
        activity, is that activity (typically both were entered by hand before syncd ran)."""
        candidates: dict[tuple[str, str, str, str], str] = {}
        for key, i in items.items():
            if i.crm is not None and i.crm_in_scope and key not in links and i.remote is None:
                with self._iso.guard(key, "pairing"):
                    candidates[_signature(i.crm)] = key
        if not candidates:
            return  # a first pull into a CRM that holds none of it: thousands of signatures for nothing
        for key in [k for k in items if k.startswith(REMOTE_KEY)]:
            item = items[key]
            if item.remote is None or item.remote.activity is None:
                continue
            with self._iso.guard(key, "pairing"):
                match = candidates.pop(_signature(item.remote.activity), None)
                if match is not None:
                    items[match] = replace(items[match], remote=item.remote, seen=Seen.CHANGED)
                    del items[key]

    # -- reading the calendar a page at a time --------------------------------------------------

    def _read_changes(self, state: str | None, links: dict[str, Link]) -> tuple[RemoteChanges, list[str]]:
        """The calendar's changes since ``state``, and the refs of changed items still to read: a
        connector that lists its changes (:class:`~syncd.connectors.base.Paging`) has its items read a
        page at a time by :meth:`_stream`; another's come read already."""
        listing = getattr(self.connector, "listing", None)  # base.Paging
        if listing is None:
            return self.connector.changes(state, _known(links)), []
        listed = listing(state, _known(links))
        return RemoteChanges([], listed.deleted, listed.state, listed.total), listed.changed

    def _streamable(
        self, pending: list[str], remote: RemoteChanges, crm_keys: set[str], known: dict[str, Activity],
        links: dict[str, Link],
    ) -> bool:
        """Whether the mass-deletion guard can be settled before the changed items are read, so that
        pages may be written as they are read: the most this pass could lose on either side, counted
        from refs and ids alone (every linked item the calendar reported gone whose activity is there;
        every linked item it looks at whose activity is not), stays below the guard's limits. Else the
        pass reads every item first and the guard decides on the exact losses (an item that moved to
        another href is no loss, and only its body says where it went)."""
        by_ref = {link.ref: link for link in links.values() if link.ref}
        gone = {by_ref[r].activity_id for r in remote.deleted if r in by_ref}
        looked_at = {by_ref[r].activity_id for r in pending if r in by_ref} | (crm_keys & links.keys())
        held = known.keys() | self.crm.existing((gone | looked_at) - known.keys())
        lost_crm = sum(1 for k in looked_at - gone if k not in held and k not in self._iso)
        try:
            self._check_losses(len(gone & held), lost_crm, links)
        except SafetyStop:
            return False
        return True

    def _stream(
        self, pending: list[str], remote: RemoteChanges, crm_keys: set[str], known: dict[str, Activity],
        bstate: BindingState, links: dict[str, Link], deferred: set[str], report: PassReport, remember: set[str],
    ) -> tuple[list[RemoteItem], set[str]]:
        """Read the changed items a page at a time and gather, plan and execute each page before the
        next is parsed: a pass holds one page of parsed items (and the next one's answer, read
        meanwhile by a connector that reads ahead), never the whole calendar. Across pages
        only keys are kept (the keys settled, the signatures of activities a first sync may pair).

        Returned for the pass's last gather, with the CRM's side and the deletions: the items whose
        decision needs the whole pass (one found under another href than its link's, moved or a second
        copy; a calendar-made item that may pair with an unlinked activity), and the keys settled that
        the rest of the pass asks about: activities' ids, and the calendar-made items' keys in
        ``remember`` (in error), not the pulled items' (unique to their href, and as many as the
        calendar holds). An item of an activity a page settled already is a second copy, left alone as
        one found elsewhere is."""
        by_ref = {link.ref: link for link in links.values() if link.ref}
        pairable = self._pairable(crm_keys, known, links)
        kept: list[RemoteItem] = []
        handled: set[str] = set()
        with closing(self._pages(pending)) as pages:
            for fetched in pages:
                page: list[RemoteItem] = []
                for item in fetched:
                    key, elsewhere = _placed(item, by_ref, links)
                    if elsewhere is not None or (key.startswith(REMOTE_KEY) and _may_pair(item, pairable)):
                        kept.append(item)
                    elif key in handled:
                        self._iso.fail(f"{REMOTE_KEY}{item.ref}", "pairing",
                                       f"a second calendar item for activity {key}; left alone")
                    else:
                        if not key.startswith(REMOTE_KEY) or key in remember:
                            handled.add(key)
                        page.append(item)
                if not page:
                    continue
                items = self._gather(set(), bstate, links, RemoteChanges(page, [], remote.state), False, deferred,
                                     known)
                plan = self._plan(items)
                self._describe(plan, report, dry_run=False)
                self._execute_plan(plan, items, report, last=False)
        return kept, handled

    def _pages(self, refs: list[str]) -> Generator[list[RemoteItem], None, None]:
        """The changed items a page at a time; a connector that reads ahead
        (:class:`~syncd.connectors.base.ReadAhead`) reads the next page while this one is settled."""
        pages = [refs[start : start + PAGE_SIZE] for start in range(0, len(refs), PAGE_SIZE)]
        fetch_pages = getattr(self.connector, "fetch_pages", None)  # base.ReadAhead
        if fetch_pages is not None:
            yield from fetch_pages(pages)
        else:
            yield from map(self.connector.fetch, pages)

    def _pairable(
        self, crm_keys: set[str], known: dict[str, Activity], links: dict[str, Link]
    ) -> set[tuple[str, str, str, str]]:
        """Signatures of the unlinked activities this pass looks at, which a calendar item may pair with
        (:meth:`_pair_first_sync`); one that cannot be computed pairs with nothing (the last gather
        records it)."""
        found: set[tuple[str, str, str, str]] = set()
        for key in crm_keys - links.keys():
            activity = known.get(key)
            if activity is not None and self._in_scope(activity)[0]:
                with suppress(Exception):
                    found.add(_signature(activity))
        return found

    # -- safety ----------------------------------------------------------------------------------

    def _guard(self, items: dict[str, ItemInput], links: dict[str, Link]) -> None:
        """Stop before one side's mass loss reaches the other: a share of at least ``mass_delete_ratio``
        of the synced items and at least ``mass_delete_min`` of them, or, with ``mass_delete_all``, a
        calendar that lost all of two or more, however small (a wrong URL or account, or a server that
        renamed every item, looks like that). A CRM that lost all of a few is a user's clean-up: the
        store does not move under a binding (its links live in it)."""
        # Only losses this pass would carry to the other side; an item gone on both is no loss.
        lost_remote = sum(1 for i in items.values() if i.link is not None and i.seen == Seen.DELETED and i.crm)
        lost_crm = sum(1 for i in items.values() if i.link is not None and i.crm is None and i.seen != Seen.DELETED)
        self._check_losses(lost_remote, lost_crm, links)

    def _check_losses(self, lost_remote: int, lost_crm: int, links: dict[str, Link]) -> None:
        total = sum(1 for link in links.values() if link.status == LinkStatus.SYNCED)
        threshold = max(self.binding.mass_delete_min, self.binding.mass_delete_ratio * total)
        name = self.binding.name
        for side, lost in (("calendar", lost_remote), ("CRM", lost_crm)):
            if side == "calendar" and self.binding.mass_delete_all and 2 <= lost == total:
                # No ratio lets this through: a side that empties at once is far likelier a wrong URL,
                # account or store, or a server that renamed every item, than a clean-up.
                raise SafetyStop(
                    f"the {side} lost all {lost} synced items at once; nothing was changed. If they were "
                    "deleted on purpose, delete them in the CRM too (or set mass_delete_all = false for "
                    f"binding {name!r}); otherwise check the calendar URL "
                    f"and account, or run `syncd forget --binding {name}` to start over (the items of both "
                    "sides are then paired again, and what one side lacks is copied from the other)"
                )
            if total >= self.binding.mass_delete_min and lost >= threshold:
                raise SafetyStop(
                    f"the {side} lost {lost} of {total} synced items at once; nothing was changed. "
                    f"If this is intended, raise mass_delete_ratio above {lost / total:.2f} for binding "
                    f"{name!r}; otherwise check the calendar URL and account"
                )

    def _check_location(self, bstate: BindingState, links: dict[str, Link]) -> None:
        """A binding whose calendar was changed in the config still has links into the old one:
        writing through them would keep updating the old calendar, and the new one's missing items
        would look deleted. Nothing is done until the admin says which calendar is meant."""
        here = self.connector.location
        if not links or bstate.remote_location in (None, here):
            return
        raise SafetyStop(
            f"binding {self.binding.name!r} now points at {here}, but its {len(links)} synced items are in "
            f"{bstate.remote_location}; nothing was changed. Point it back at the old calendar, or run "
            f"`syncd forget --binding {self.binding.name}` to start over with the new one (its items are "
            "paired with the CRM's by content or created; the old calendar is left as it is)"
        )

    # -- the pass --------------------------------------------------------------------------------

    def run(self, dry_run: bool = False) -> PassReport:
        """One pass: gather, plan, execute, save the cursors. Only what concerns the whole binding
        (the calendar or the store failing, the mass-deletion guard) fails it; an item that fails is
        recorded with its reason and retried when either side changes it, else on a back-off."""
        report = PassReport(self.binding.name)
        started = time.monotonic()
        pass_row = None if dry_run else self.state.pass_started(self.binding.name, self.worker)
        bound = log.bind(binding=self.binding.name, pass_id=report.pass_id)
        self._iso = Isolation(self.binding.name, self.state.store_failure)
        settled: set[str] = set()
        errors: dict[str, ErrorInfo] = {}
        try:
            bstate = self.state.binding_state(self.binding.name)
            links = self.state.links(self.binding.name)
            self._check_location(bstate, links)
            errors = self.state.item_errors(self.binding.name)
            cursor_now = self.crm.cursor()
            read_at = self.clock()
            deferred = {
                k for k in bstate.retry
                if k in errors and next_attempt(errors[k].failures, errors[k].last_at) > read_at
            }
            # The CRM's side before the calendar's: a one-shot sync's first request may be on its way
            # already (syncd.connectors.caldav_early), and what the store reads meanwhile is free.
            crm_keys = self._crm_keys(bstate, links, deferred)
            entering, window = self._entering(bstate, links)
            crm_keys |= entering
            remote, pending = self._read_changes(bstate.remote_state, links)
            for round_ in range(MAX_ROUNDS):
                before = sum(report.counts[k] for k in REMOTE_WRITES)
                self._done, self._total = 0, len(pending)
                known = self.crm.load(sorted(k for k in crm_keys if not k.startswith(REMOTE_KEY)), self._iso.guard)
                handled: set[str] = set()
                if pending and not dry_run and self._streamable(pending, remote, crm_keys, known, links):
                    kept, handled = self._stream(pending, remote, crm_keys, known, bstate, links, deferred, report,
                                                 remember=bstate.retry | errors.keys())
                    settled.update(handled)
                    remote = replace(remote, changed=remote.changed + kept)
                elif pending:
                    remote = replace(remote, changed=remote.changed + self.connector.fetch(pending))
                items = self._gather(crm_keys, bstate, links, remote, round_ == 0, deferred, known, handled)
                self._guard(items, links)
                plan = self._plan(items)
                self._describe(plan, report, dry_run)
                if dry_run:
                    return report
                self._execute_plan(plan, items, report)
                settled.update(items)
                state, state_at = remote.state, read_at
                if sum(report.counts[k] for k in REMOTE_WRITES) == before:
                    # No calendar write in this round: every link it wrote records an item as the feed
                    # read under `state` reported it, so that state covers them. Stamped after the
                    # round, or the next pass would take each of them for uncovered and fetch it again.
                    state_at = self.clock()
                    break
                # This round wrote to the calendar after its state was read. Read the feed once more,
                # so the state saved covers syncd's own writes (own writes come back with known etags
                # and cost nothing more); what others changed meanwhile is handled in another round.
                links = self.state.links(self.binding.name)
                read_at = self.clock()
                remote, pending = self._read_changes(remote.state, links)
                crm_keys = set()
                if not remote.changed and not remote.deleted and not pending:
                    state, state_at = remote.state, read_at
                    break
            bstate.crm_cursor = cursor_now
            bstate.remote_state, bstate.remote_state_at = state, state_at
            bstate.window_start, bstate.window_end = window
            bstate.remote_location = self.connector.location
            # Items in error are looked at again: at once if a side changes them, else when due.
            bstate.retry = set(self._iso.faults) | (deferred - settled)
            with self.state.transaction():
                self.state.save_binding_state(bstate)
        except SyncdError as exc:
            report.result = "stopped" if isinstance(exc, SafetyStop) else "failed"
            report.error = scrub_text(str(exc))
            bound.error("pass failed", error=report.error, kind=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - a bug must fail this binding's pass, not the daemon
            report.result = "failed"
            # The report is printed and stored for `syncd status`: no secret a message carries.
            report.error = scrub_text(f"internal error: {type(exc).__name__}: {exc}")
            bound.exception("pass failed with an internal error")
        finally:
            report.seconds = time.monotonic() - started
            self._report_faults(report, errors, settled, save=not dry_run)
            if pass_row is not None:
                self.state.pass_finished(pass_row, report.result, dict(report.counts), report.error)
        bound.info("pass finished", result=report.result, seconds=round(report.seconds, 3), **report.counts)
        return report

    def _report_faults(self, report: PassReport, errors: dict[str, ErrorInfo], settled: set[str], save: bool) -> None:
        """Put this pass's item errors in the report, the log and the store; clear the ones that synced."""
        faults = self._iso.faults
        for fault in faults.values():
            report.counts["errors"] += 1
            report.errors.append(f"{fault.key}: {fault.reason}")
            report.faults.append(fault)
            if not fault.bug:  # a bug was logged with its traceback already
                log.warning("item failed", binding=self.binding.name, item=fault.key, step=fault.step,
                            error=fault.reason)
        if not save:
            return
        at = self.clock()
        try:
            with self.state.transaction():
                for fault in faults.values():
                    self.state.record_error(self.binding.name, fault.key, fault.reason, at)
                for key in (settled & errors.keys()) - faults.keys():
                    self.state.clear_error(self.binding.name, key)
            report.items_in_error = len(self.state.item_errors(self.binding.name))
        except Exception as exc:  # noqa: BLE001 - the pass's own result (often the store failing) says more
            log.warning("item errors not saved", binding=self.binding.name, error=f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _describe(plan: list[tuple[str, Action | None]], report: PassReport, dry_run: bool) -> None:
        room = len(plan) if dry_run else PLAN_SHOWN - len(report.plan)
        if room > 0:
            report.plan += [a.describe() for _, a in plan if a is not None][:room]

    def _plan(self, items: dict[str, ItemInput]) -> list[tuple[str, Action | None]]:
        # A merge base is needed only where both sides have the item: read those in one go.
        self.state.read_bases(
            i.link for i in items.values() if i.link is not None and i.crm is not None and i.remote is not None
        )
        plan: list[tuple[str, Action | None]] = []
        for key, item in sorted(items.items()):
            with self._iso.guard(key, "deciding"):
                plan.append((key, decide(item, self.policy)))
        return plan

    def _execute_plan(
        self, plan: list[tuple[str, Action | None]], items: dict[str, ItemInput], report: PassReport,
        last: bool = True,
    ) -> None:
        """Execute a plan (``last``: the pass's last one in this round, not a page of it)."""
        prefetch = getattr(self.connector, "prefetch", None)  # base.Prefetching
        if prefetch is not None:
            # Updates with no copy from the feed: the connector reads what they write over in batches.
            prefetch([a.link.ref for _, a in plan if isinstance(a, PushUpdate) and a.link.ref
                      and (a.remote is None or a.remote.raw is None)])
        actions = [(key, action) for key, action in plan if action is not None]
        create_many = getattr(self.connector, "create_many", None)
        batched: list[tuple[str, PushCreate]] = []
        store_only: list[tuple[str, Action]] = []
        single: list[tuple[str, Action]] = []
        for key, action in actions:
            if create_many is not None and isinstance(action, PushCreate):
                batched.append((key, action))
            elif _store_only(action):
                store_only.append((key, action))
            else:
                single.append((key, action))
        # Events and to-dos live in different folders: grouped, a batch goes to one folder in one request.
        batched.sort(key=lambda pair: pair[1].activity.is_event)
        # A pass that reads its items a page at a time knows how many items it will read before it
        # knows how many actions they make: that count stands for the total until the last plan.
        self._total = self._done + len(actions) if last else max(self._total, self._done + len(actions))
        for start in range(0, len(store_only), STORE_BATCH):
            writes = store_only[start : start + STORE_BATCH]
            self._advance(len(writes))
            self._write_store(writes, report)
        for key, action in single:
            self._advance(1)
            with self._iso.guard(key, "writing"):
                self._execute(action, items[key], report)
        if create_many is None:
            return
        for start in range(0, len(batched), BATCH_SIZE):
            chunk = batched[start : start + BATCH_SIZE]
            self._advance(len(chunk))
            self._create_batch(chunk, create_many, items, report)

    def _advance(self, actions: int) -> None:
        self._done += actions
        if self.progress is not None:
            self.progress(self._done, self._total)

    def _write_store(self, chunk: list[tuple[str, Action]], report: PassReport) -> None:
        """Actions that write only the store, for many items in one transaction (an activity and its
        link still commit together). An item the store's rules refuse fails before it; if the
        transaction fails (a row the store's own constraints refuse), the batch is written again item
        by item, so that only the bad item fails. A failure of the store itself fails the pass, as a
        single write's does: nothing of the batch was committed, and the next pass does it again."""
        iso = self._iso
        taken = self.crm.existing(a.activity.id for _, a in chunk if isinstance(a, PullCreate))
        batch = StoreWrites()
        touched: set[str] = set()
        staged: list[tuple[str, Action]] = []
        later: list[tuple[str, Action]] = []
        for key, action in chunk:
            with iso.guard(key, "writing"):
                writes = self._store_writes(action, taken)
                ids = writes.ids()
                if ids & touched:
                    # Two items that write one activity (two calendar items with one UID): the second
                    # goes alone after the batch and meets the first as it then is.
                    later.append((key, action))
                    continue
                touched |= ids
                batch.add(writes)
                staged.append((key, action))
        if staged:
            try:
                batch.commit(self.crm, self.state, self.binding.name)
            except Exception as exc:
                if iso.binding_failure(exc):
                    raise
                first_line = str(exc).splitlines()[0] if str(exc) else ""
                log.info("a batch of store writes failed; writing its items one by one", binding=self.binding.name,
                         items=len(staged), error=scrub_text(f"{type(exc).__name__}: {first_line}"))
                later = staged + later
            else:
                report.counts.update(batch.counts)
                for _, action in staged:
                    self._logged(action, report)
        for key, action in later:
            with iso.guard(key, "writing"):
                self._apply(action, report)

    def _create_batch(
        self,
        chunk: list[tuple[str, PushCreate]],
        create_many: Callable[[list[Activity]], list[WriteResult | SyncdError]],
        items: dict[str, ItemInput],
        report: PassReport,
    ) -> None:
        """Creates through a connector that batches them (Exchange: one request per hundred items).

        The ``creating`` links of the whole batch commit before the request, as for a single create:
        a process killed while it runs leaves links the next pass resolves with ``find``."""
        name = self.binding.name
        with self.state.transaction():
            self.state.save_links(name, [
                Link(name, a.id, a.kind, None, None, None, None, None, LinkStatus.CREATING)
                for a in (action.activity for _, action in chunk)
            ])
        try:
            results = create_many([action.activity for _, action in chunk])
        except Exception as exc:  # noqa: BLE001 - one guard per item of the batch, below
            for key, _ in chunk:
                self._iso.record(key, "creating", exc)
            return
        with self.state.transaction():
            self.state.save_links(name, [
                self._synced(action.activity, result)
                for (_, action), result in zip(chunk, results, strict=True)
                if isinstance(result, WriteResult)
            ])
        for (key, action), result in zip(chunk, results, strict=True):
            if isinstance(result, WriteResult):
                report.counts["remote_created"] += 1
            elif isinstance(result, AlreadyExists):
                with self._iso.guard(key, "writing"):
                    self._execute(action, items[key], report)  # pairs with what is there
            else:
                self._iso.record(key, "creating", result)

    # -- execution -------------------------------------------------------------------------------

    def _synced(self, activity: Activity, result: WriteResult | RemoteItem) -> Link:
        # plan's crm_fingerprint and remote_fingerprint, from one canonical form of the activity;
        # those the connector computed as it read this very activity, when it did.
        known = result.fingerprints if isinstance(result, RemoteItem) and result.activity is activity else None
        if known is not None and known.fields == self.policy.compared:
            crm_fp, remote_fp = known.crm, known.remote
        else:
            crm_fp, remote_fp = fingerprints(activity, self.policy.compared)
        return Link(self.binding.name, activity.id, activity.kind, result.ref, result.etag, crm_fp, remote_fp, activity)

    def _execute(self, action: Action, item: ItemInput, report: PassReport, races: int = 0) -> None:
        try:
            self._apply(action, report)
        except (PreconditionFailed, NotFound) as exc:
            # The calendar changed under the write: read it again and decide again.
            if races >= MAX_RACES:
                raise
            ref = getattr(exc, "ref", None)
            fresh = self.connector.fetch([ref]) if ref else []
            item = replace(item, remote=fresh[0] if fresh else None, seen=Seen.CHANGED if fresh else Seen.DELETED)
            if isinstance(exc, NotFound) or not fresh:
                item = replace(item, seen=Seen.DELETED, remote=None)
            report.counts["races"] += 1
            again = decide(item, self.policy)
            if again is not None:
                self._execute(again, item, report, races + 1)
        except AlreadyExists as exc:
            if races >= MAX_RACES:
                raise
            found = self.connector.find(item.key, item.crm.kind) if item.crm else None
            if found is None:
                raise ItemError(exc.ref, None, "the server reports the item exists but it cannot be read") from None
            item = replace(item, link=None, remote=found, seen=Seen.CHANGED)
            again = decide(item, self.policy)
            if again is not None:
                self._execute(again, item, report, races + 1)

    def _apply(self, action: Action, report: PassReport) -> None:
        name = self.binding.name
        if _store_only(action):
            self._commit(self._store_writes(action), report)
            self._logged(action, report)
            return
        match action:
            case PushCreate(activity=activity):
                pending = Link(name, activity.id, activity.kind, None, None, None, None, None, LinkStatus.CREATING)
                with self.state.transaction():
                    self.state.save_link(pending)
                result = self.connector.create(activity)
                with self.state.transaction():
                    self.state.save_link(self._synced(activity, result))
                report.counts["remote_created"] += 1
            case PushUpdate(activity=activity, link=link, remote=remote):
                etag = remote.etag if remote is not None else link.etag
                raw = remote.raw if remote is not None else None
                assert link.ref is not None
                if (link.kind in EVENT_KINDS) != activity.is_event:
                    # An appointment became a task or back: an event and a to-do are different
                    # objects (and may live in different collections), so the item is replaced.
                    self.connector.delete(link.ref, etag)
                    self._apply(PushCreate(action.key, activity), report)
                    report.counts["remote_deleted"] += 1
                    return
                result = self.connector.update(link.ref, etag, activity, raw)
                with self.state.transaction():
                    self.state.save_link(self._synced(activity, result))
                report.counts["remote_updated"] += 1
            case PushDelete(link=link):
                if link.ref:
                    self.connector.delete(link.ref, link.etag)
                with self.state.transaction():
                    if link.binding:
                        self.state.delete_link(name, link.activity_id)
                report.counts["remote_deleted"] += 1
            case Write(result=result, remote=remote):
                # A merge the CRM will not store is not written anywhere (nor kept as the merge base,
                # which must load again): it becomes this item's error before the calendar is touched.
                check_activity(result)
                written = self.connector.update(remote.ref, remote.etag, result, remote.raw)
                report.counts["remote_updated"] += 1
                self._commit(self._store_writes(action, written=written), report)
            case RecordConflict(conflict=conflict, link=link, remote=remote):
                if link is None:
                    assert remote is not None and conflict.crm is not None
                    link = Link(name, action.key, conflict.crm.kind, remote.ref, remote.etag, None, None, None)
                with self.state.transaction():
                    conflict_id = self.state.record_conflict(name, conflict, link.ref)
                    self.state.save_link(link.with_(status=LinkStatus.CONFLICT))
                report.counts["conflicts"] += 1
                log.warning("conflict waits for a decision", binding=name, activity=action.key,
                            conflict_id=conflict_id, fields=list(conflict.fields))
            case Skip(reason=reason, error=error):
                if error:
                    self._iso.fail(action.key, "reading the calendar item", reason)
            case _:
                raise AssertionError(f"unknown action {action!r}")
        self._logged(action, report)

    def _store_writes(
        self, action: Action, taken: set[str] | None = None, written: WriteResult | None = None
    ) -> StoreWrites:
        """What an action writes to the store (for a :class:`Write`, after its push wrote ``written``).
        Every activity is checked against the store's rules here, so that one the store refuses fails
        as this item's error before anything is written. ``taken``: the ids among the batch's new
        activities that the CRM already holds (else they are looked up)."""
        w = StoreWrites()
        match action:
            case PullCreate(activity=activity, remote=remote):
                activity = self._new_crm_activity(activity, taken)
                if not (remote.accepted and activity is remote.activity):
                    check_activity(activity)
                w.save.append(activity)
                w.links.append(self._synced(activity, remote))
                w.counts["crm_created"] += 1
            case Write(result=result, remote=remote, link=link, save_crm=save_crm, push=push, conflict=conflict):
                check_activity(result)
                if save_crm:
                    w.save.append(result)
                    w.counts["crm_updated"] += 1
                w.links.append(self._synced(result, written or remote))
                if conflict is not None:
                    w.conflicts.append((conflict, remote.ref))
                    w.counts["conflicts"] += 1
                if link is None:
                    w.counts["paired"] += 1
                elif not push and not save_crm:
                    w.counts["relinked"] += 1
            case PullDelete(activity=activity, link=link, cancel=cancel):
                if cancel:
                    cancelled = activity.replace(status=self.policy.cancel_status)
                    check_activity(cancelled)
                    w.save.append(cancelled)
                    w.counts["crm_updated"] += 1
                else:
                    w.delete.append(activity.id)
                    w.counts["crm_deleted"] += 1
                w.unlink.append(link.activity_id)
            case Unlink(link=link, save_crm=save):
                if save is not None:
                    check_activity(save)
                    w.save.append(save)
                    w.counts["crm_updated"] += 1
                w.unlink.append(link.activity_id)
                w.counts["unlinked"] += 1
            case Relink(link=link, remote=remote, activity=activity):
                source = remote if remote is not None else WriteResult(link.ref or "", link.etag)
                new = self._synced(activity, source)
                if remote is None:
                    new = new.with_(remote_fp=link.remote_fp)
                w.links.append(new)
                w.counts["relinked"] += 1
            case _:
                raise AssertionError(f"not a store write: {action!r}")
        return w

    def _commit(self, writes: StoreWrites, report: PassReport) -> None:
        try:
            writes.commit(self.crm, self.state, self.binding.name)
        except Exception as exc:
            reason = self.state.refusal(exc)
            if reason is None:
                raise
            # The CRM's schema refuses this item's row: its data, not a bug of syncd's, so said plainly.
            ids = ", ".join(sorted(writes.ids()))
            raise ValidationError(f'activity "{ids}": the CRM store refused it: {reason}') from exc
        report.counts.update(writes.counts)

    def _logged(self, action: Action, report: PassReport) -> None:
        """What is said of an action once it is written."""
        name = self.binding.name
        conflict = action.conflict if isinstance(action, Write) else None
        if conflict is not None:
            log.info("conflict settled", binding=name, activity=action.key, policy=conflict.policy,
                     resolution=conflict.resolution, fields=list(conflict.fields))
        reverted = getattr(action, "reverted", ())
        if reverted:
            report.counts["reverted"] += 1
            log.warning("a calendar edit of a registered activity's times was reverted", binding=name,
                        activity=action.key, fields=list(reverted))

    def _new_crm_activity(self, activity: Activity, taken: set[str] | None = None) -> Activity:
        """A calendar item becomes an activity owned by the binding's user, with an id not yet taken."""
        if activity.id in taken if taken is not None else self.crm.existing([activity.id]):
            raise ItemError(activity.id, "UID", "an activity with this id already exists in the CRM")
        kind = activity.kind if activity.kind in self.binding.kinds else Kind.APPOINTMENT
        if activity.owner == self.binding.owner and activity.kind == kind:
            return activity  # as the calendar's owner read it (most items): no copy of every field
        return activity.replace(owner=self.binding.owner, kind=kind)
