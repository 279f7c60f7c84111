"""Pure planning: what to do with one activity, given its CRM version, its calendar version and its link.

Every combination of the three inputs is handled here and nowhere else, without I/O, so the table can
be tested case by case (as pimsync's ``ItemAction::for_item``). The runner gathers the inputs, calls
:func:`decide` for each, and executes the resulting actions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

from syncd.connectors.base import RemoteItem
from syncd.engine.actions import (
    Action,
    ConflictRecord,
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
from syncd.engine.links import Link, LinkStatus
from syncd.engine.merge import CRM_ONLY_FIELDS, newest_is_crm, take_remote, three_way
from syncd.mapping.carried import keep_crm
from syncd.mapping.fingerprint import changed_fields, fingerprint
from syncd.model import CONTENT_FIELDS, Activity, Participant, Response


class Seen(StrEnum):
    """What this pass learnt about the calendar item."""

    CHANGED = "changed"
    """Reported by the change feed (or re-read): ``remote`` holds its current version."""
    DELETED = "deleted"
    UNSEEN = "unseen"
    """Not reported: unchanged since the link was stored, or never there."""


@dataclass(frozen=True, slots=True)
class Policy:
    """A binding's sync settings, as the planner needs them."""

    owner: str
    direction: str = "both"
    conflict: str = "merge"
    crm_wins_clash: bool = True
    on_remote_delete: str = "delete"
    cancel_status: str = "cancelled"
    on_remote_delete_completed: str = "recreate"
    remote_fields: frozenset[str] = frozenset(CONTENT_FIELDS)
    """The fields the calendar can hold; the rest always come from the CRM."""
    registered_statuses: frozenset[str] = frozenset()
    """Casefolded statuses of a registered activity (a contact that happened): its times are the CRM's,
    and a calendar edit of them is reverted (seed 002: the date is editable only while planned)."""

    def registered(self, activity: Activity) -> bool:
        return activity.status is not None and activity.status.casefold() in self.registered_statuses

    @property
    def push(self) -> bool:
        return self.direction != "remote-to-crm"

    @property
    def pull(self) -> bool:
        return self.direction != "crm-to-remote"

    @property
    def compared(self) -> frozenset[str]:
        return self.remote_fields - CRM_ONLY_FIELDS


@dataclass(frozen=True, slots=True)
class ItemInput:
    key: str
    link: Link | None = None
    crm: Activity | None = None
    """The CRM's current version; ``None`` when deleted or never there."""
    crm_in_scope: bool = False
    """The activity belongs in this binding's calendar (owner or participating user, synced kind)."""
    crm_is_copy: bool = False
    """Shown in this calendar because the binding's owner takes part, not because they own it."""
    crm_completed: bool = False
    crm_in_window: bool = True
    remote: RemoteItem | None = None
    seen: Seen = Seen.UNSEEN
    importable: bool = True
    """A calendar-created item passes the binding's import filter and time window."""
    crm_tombstone: bool = False
    """The CRM deleted this activity (so a stray calendar item of it is not re-imported)."""


def remote_fingerprint(activity: Activity, policy: Policy) -> str:
    return fingerprint(activity, sorted(policy.compared))


def crm_fingerprint(activity: Activity) -> str:
    return fingerprint(activity)


def _differs(a: Activity, b: Activity, policy: Policy) -> bool:
    return bool(changed_fields(a, b, sorted(policy.compared)))


def decide(item: ItemInput, policy: Policy) -> Action | None:
    """The one action for this item, or ``None`` when there is nothing to do."""
    remote = item.remote
    if remote is not None and remote.activity is None:
        return Skip(item.key, f"unreadable calendar item: {remote.error}", error=True)
    item = _hidden_kept(item)
    if item.link is None:
        return _unlinked(item, policy)
    return _linked(item, item.link, policy)


def _hidden_kept(item: ItemInput) -> ItemInput:
    """The calendar's version with the CRM's values where it did not carry syncd's hidden data: a
    client that dropped syncd's X-properties changed nothing the user could see (see
    :mod:`syncd.mapping.carried`). The one place this is decided, before anything is compared."""
    remote = item.remote
    if remote is None or remote.activity is None or item.crm is None or not remote.uncarried:
        return item
    kept = keep_crm(remote.activity, item.crm, remote.uncarried)
    return dataclasses.replace(item, remote=dataclasses.replace(remote, activity=kept))


def _unlinked(item: ItemInput, policy: Policy) -> Action | None:
    crm, remote = item.crm, item.remote
    if remote is not None:
        assert remote.activity is not None
        if crm is not None:
            if not item.crm_in_scope:
                return Skip(item.key, "the calendar item belongs to an activity of another user")
            return _both_present(item, None, crm, remote, policy)
        if item.crm_tombstone:
            if not policy.push:
                return None
            stray = Link("", item.key, remote.activity.kind, remote.ref, remote.etag, None, None, None)
            return PushDelete(item.key, stray, reason="the activity was deleted in the CRM")
        if not policy.pull or not item.importable:
            return None
        # The item as read when its owner is already the binding's (most): what the connector
        # fingerprinted as it read it (``RemoteItem.fingerprints``) is then this very activity.
        pulled = remote.activity
        if pulled.owner != policy.owner:
            pulled = pulled.replace(owner=policy.owner)
        return PullCreate(item.key, pulled, remote)
    if crm is not None and item.crm_in_scope and item.crm_in_window and policy.push and _placeable(crm):
        return PushCreate(item.key, crm)
    return None


def _placeable(activity: Activity) -> bool:
    """An appointment or call without a start is valid in the CRM (not yet planned) but has no place
    in a calendar: it is not created there, as a mailing is not, rather than refused on every pass."""
    return not activity.is_event or activity.start is not None


def _linked(item: ItemInput, link: Link, policy: Policy) -> Action | None:
    crm, remote = item.crm, item.remote
    if link.status == LinkStatus.CONFLICT:
        return None
    crm_gone = crm is None or not item.crm_in_scope
    remote_gone = item.seen == Seen.DELETED
    if crm_gone and remote_gone:
        return Unlink(item.key, link, "gone on both sides")
    if crm_gone:
        return _crm_gone(item, link, policy)
    assert crm is not None
    if remote_gone:
        return _remote_gone(item, link, crm, policy)
    if remote is None:
        crm_changed = crm_fingerprint(crm) != link.crm_fp
        if link.status == LinkStatus.CREATING:
            # The create may or may not have reached the server before a crash: the runner looks
            # the item up (Connector.find) first and only gets here when it is not there.
            return PushCreate(item.key, crm) if policy.push else Unlink(item.key, link, "not created")
        if not crm_changed and link.status == LinkStatus.SYNCED:
            return None
        if policy.push:
            return PushUpdate(item.key, crm, link)
        return Relink(item.key, link, None, crm)
    if link.status == LinkStatus.CREATING:
        return _finish_create(item, link, crm, remote, policy)
    return _both_present(item, link, crm, remote, policy)


def _finish_create(item: ItemInput, link: Link, crm: Activity, remote: RemoteItem, policy: Policy) -> Action | None:
    """The item of a create that a crash or a lost answer cut short. It is syncd's own write, not a
    user's edit, and may be incomplete (Exchange writes a series' exceptions after the master): what
    syncd meant to write, the CRM's version, completes it. Comparing it as the calendar's version
    would report a conflict, and "remote-wins" would write the half-made series over the CRM."""
    assert remote.activity is not None
    link = link.with_(ref=remote.ref, etag=remote.etag)
    if not _differs(crm, remote.activity, policy) or not policy.push:
        return Relink(item.key, link, remote, crm)
    return PushUpdate(item.key, crm, link, remote)


def _crm_gone(item: ItemInput, link: Link, policy: Policy) -> Action | None:
    remote = item.remote
    if item.crm is None and remote is not None and remote.activity is not None and policy.pull:
        remote_changed = remote_fingerprint(remote.activity, policy) != link.remote_fp
        if remote_changed and policy.conflict == "remote-wins":
            return PullCreate(item.key, remote.activity.replace(owner=policy.owner, id=item.key), remote)
    if not policy.push:
        return Unlink(item.key, link, "deleted in the CRM; the binding does not write to the calendar")
    reason = "deleted in the CRM" if item.crm is None else "no longer belongs in this calendar"
    if remote is not None:
        # The item as read now: its etag, not the link's, is what a conditional delete must name.
        link = link.with_(ref=remote.ref, etag=remote.etag)
    return PushDelete(item.key, link, reason=reason)


def _remote_gone(item: ItemInput, link: Link, crm: Activity, policy: Policy) -> Action | None:
    if item.crm_is_copy:
        declined = _with_response(crm, policy.owner, Response.DECLINED) if policy.pull else None
        return Unlink(item.key, link, "the copy was deleted in the calendar: declined", save_crm=declined)
    crm_changed = crm_fingerprint(crm) != link.crm_fp
    if not policy.pull:
        return PushCreate(item.key, crm) if policy.push else Unlink(item.key, link, "deleted in the calendar")
    if crm_changed and policy.push and policy.conflict != "remote-wins":
        # Edited in the CRM while deleted in the calendar: the edit is the newer intent; keep it.
        return PushCreate(item.key, crm)
    if item.crm_completed:
        if policy.on_remote_delete_completed == "recreate" and policy.push:
            return PushCreate(item.key, crm)
        return Unlink(item.key, link, "deleted in the calendar; a completed activity stays in the CRM")
    return PullDelete(item.key, crm, link, cancel=policy.on_remote_delete == "cancel")


def _with_response(activity: Activity, email: str, response: Response) -> Activity:
    key = email.casefold()
    return activity.replace(
        participants=tuple(
            Participant(p.kind, p.email, p.name, p.role, response) if p.key == key else p
            for p in activity.participants
        )
    )


def _response_of(activity: Activity, email: str) -> Response | None:
    key = email.casefold()
    return next((p.response for p in activity.participants if p.key == key), None)


def _both_present(
    item: ItemInput, link: Link | None, crm: Activity, remote: RemoteItem, policy: Policy
) -> Action | None:
    theirs = remote.activity
    assert theirs is not None
    crm_changed = link is None or crm_fingerprint(crm) != link.crm_fp or link.status == LinkStatus.RESOLVE_CRM
    remote_changed = (
        link is None
        or remote_fingerprint(theirs, policy) != link.remote_fp
        or link.status == LinkStatus.RESOLVE_REMOTE
    )
    if item.crm_is_copy:
        return _copy(item, link, crm, remote, policy)
    reverted = _edited_times(link, crm, theirs) if policy.registered(crm) else ()
    if reverted:
        kept = theirs.replace(**{name: getattr(crm, name) for name in _TIMES})
        action = _both_present(item, link, crm, dataclasses.replace(remote, activity=kept), policy)
        return _reverting(action, item.key, crm, link, remote, reverted, policy)
    if not _differs(crm, theirs, policy):
        if link is not None and not crm_changed and link.etag == remote.etag and link.status == LinkStatus.SYNCED:
            return None
        if link is not None:
            return Relink(item.key, link, remote, crm)
        # Paired by content: the item gets the activity's id (one write, once), so that it is known by
        # identity from then on, wherever a server moves it and whatever else comes to look like it.
        return Write(item.key, crm, remote, None, save_crm=False, push=policy.push and remote.crm_id != crm.id)
    if not remote_changed:
        if policy.push:
            return PushUpdate(item.key, crm, link, remote) if link is not None else None
        return Relink(item.key, link, remote, crm) if link is not None else None
    if not crm_changed:
        if policy.pull:
            return Write(item.key, take_remote(crm, theirs, policy.compared), remote, link, save_crm=True, push=False)
        return PushUpdate(item.key, crm, link, remote) if link is not None else None
    return _conflict(item, link, crm, remote, policy)


#: A registered activity's times: the CRM's alone.
_TIMES = ("start", "end", "due", "all_day", "timezone")


def _edited_times(link: Link | None, crm: Activity, theirs: Activity) -> tuple[str, ...]:
    """The times the calendar changed (since the last agreed version) to other than the CRM's."""
    base = link.base if link is not None and link.base is not None else crm
    edited = changed_fields(base, theirs, _TIMES)
    return tuple(name for name in changed_fields(crm, theirs, _TIMES) if name in edited)


def _reverting(
    action: Action | None, key: str, crm: Activity, link: Link | None, remote: RemoteItem, reverted: tuple[str, ...],
    policy: Policy,
) -> Action | None:
    """The action decided without the calendar's edit of a registered activity's times, made to write
    the CRM's times back (an action that would not write to the calendar then does)."""
    if not policy.push:
        return action  # the binding never writes to the calendar: the CRM just keeps its times
    match action:
        case Write():
            return dataclasses.replace(action, push=True, reverted=reverted)
        case PushUpdate():
            return dataclasses.replace(action, reverted=reverted)
        case None | Relink() if link is not None:
            return PushUpdate(key, crm, link, remote, reverted=reverted)
        case None | Relink():
            return Write(key, crm, remote, None, save_crm=False, push=True, reverted=reverted)
    return action


def _copy(item: ItemInput, link: Link | None, crm: Activity, remote: RemoteItem, policy: Policy) -> Action | None:
    """A copy in an additional user's calendar: the CRM owns it; only their own response comes back."""
    assert remote.activity is not None
    result = crm
    response = _response_of(remote.activity, policy.owner)
    if policy.pull and response is not None and response != _response_of(crm, policy.owner):
        result = _with_response(crm, policy.owner, response)
    save = result is not crm
    push = policy.push and _differs(result, remote.activity, policy)
    if not save and not push:
        if link is not None and link.etag == remote.etag and link.crm_fp == crm_fingerprint(crm):
            return None
        return Relink(item.key, link, remote, crm) if link is not None else Write(
            item.key, crm, remote, None, save_crm=False, push=False
        )
    return Write(item.key, result, remote, link, save_crm=save, push=push)


def _conflict(item: ItemInput, link: Link | None, crm: Activity, remote: RemoteItem, policy: Policy) -> Action:
    theirs = remote.activity
    assert theirs is not None
    fields = policy.compared
    clashing = tuple(changed_fields(crm, theirs, sorted(fields)))
    base = link.base if link is not None else None
    forced = link.status if link is not None else None
    how = policy.conflict
    if forced in (LinkStatus.RESOLVE_CRM, LinkStatus.RESOLVE_REMOTE):
        how = "crm-wins" if forced == LinkStatus.RESOLVE_CRM else "remote-wins"
    elif not policy.push:
        how = "remote-wins"
    elif not policy.pull:
        how = "crm-wins"
    if how == "manual":
        record = ConflictRecord(item.key, clashing, crm, theirs, base, policy.conflict, "pending")
        return RecordConflict(item.key, record, link, remote)
    if how == "newest-wins":
        how = "crm-wins" if newest_is_crm(crm, remote.modified_at, policy.crm_wins_clash) else "remote-wins"
    if how == "crm-wins":
        result, resolution = crm, "crm"
    elif how == "remote-wins":
        result, resolution = take_remote(crm, theirs, fields), "remote"
    else:
        merged = three_way(base, crm, theirs, fields, policy.crm_wins_clash)
        result, resolution = merged.result, "merged"
        clashing = merged.conflicting
    # A conflict settled by hand was recorded when it was detected; the pass only applies it.
    settled = forced in (LinkStatus.RESOLVE_CRM, LinkStatus.RESOLVE_REMOTE)
    resolved = None
    if clashing and not settled:
        resolved = ConflictRecord(item.key, clashing, crm, theirs, base, policy.conflict, resolution)
    return Write(
        item.key,
        result,
        remote,
        link,
        save_crm=bool(changed_fields(crm, result)),
        push=policy.push and _differs(result, theirs, policy),
        conflict=resolved,
    )

