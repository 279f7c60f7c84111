"""SyncFolderItems: the changes in one folder since an opaque sync state."""

from __future__ import annotations

from .. import render
from ..context import Context
from ..faults import ItemError
from ..ids import SyncState
from ..render import Shape
from ..store import StoredItem
from ..xmlns import Element, m, new, sub, t, xml_bool
from .common import error, response, success

_INVALID_STATE = ItemError(
    "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."
)


def sync_folder_items(ctx: Context, request: Element) -> Element:
    root, messages = response("SyncFolderItems")
    try:
        body = _changes(ctx, request)
    except ItemError as err:
        msg = error(messages, "SyncFolderItems", err)
        # Exchange sends these two even on errors (and exchangelib reads them unconditionally).
        sub(msg, m("SyncState"))
        sub(msg, m("IncludesLastItemInRange"), "true")
        return root
    success(messages, "SyncFolderItems").extend(body)
    return root


def _changes(ctx: Context, request: Element) -> list[Element]:
    folder = ctx.folder(request.find(m("SyncFolderId"))[0])
    token = (request.findtext(m("SyncState")) or "").strip()
    since = 0
    if token:
        state = ctx.store.sync_states.decode(token)
        if state is None or state.folder_id != folder.id or state.epoch != folder.sync_epoch:
            raise _INVALID_STATE
        since = state.seq
    ignore = {i.get("Id") for i in request.iterfind(f"{m('Ignore')}/{t('ItemId')}")}
    limit = int(request.findtext(m("MaxChangesReturned")))
    shape = Shape.parse(request.find(m("ItemShape")))

    # (seq, kind, payload): items at their latest state, deletions of items the client has seen.
    pending: list[tuple[int, str, StoredItem | str]] = [
        (i.seq, "Create" if i.created_seq > since else "Update", i)
        for i in folder.items.values()
        if i.seq > since and i.id not in ignore
    ]
    pending += [
        (deleted, "Delete", item_id)
        for item_id, (created, deleted) in folder.tombstones.items()
        if deleted > since >= created and since and item_id not in ignore
    ]
    pending.sort(key=lambda change: change[0])
    page = pending[:limit]
    last = len(page) == len(pending)
    upto = ctx.store.last_seq if last else page[-1][0]

    holder = new(m("holder"))
    sub(holder, m("SyncState"), ctx.store.sync_states.encode(SyncState(folder.id, upto, folder.sync_epoch)))
    sub(holder, m("IncludesLastItemInRange"), xml_bool(last))
    changes = sub(holder, m("Changes"))
    for _, kind, payload in page:
        change = sub(changes, t(kind))
        if isinstance(payload, str):
            sub(change, t("ItemId"), Id=payload)
        else:
            render.item(change, payload, shape)
    return list(holder)
