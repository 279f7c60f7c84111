"""GetItem, CreateItem, UpdateItem, DeleteItem."""

from __future__ import annotations

import copy
from datetime import datetime

from lxml import etree

from .. import derive, occurrences, render, writes
from ..context import Context
from ..faults import ItemError
from ..render import Shape
from ..store import SentMessage, StoredItem, prop_key
from ..xmlns import Element, local, m, sub, t
from .common import children, each, response

_KINDS = ("CalendarItem", "Task")
# Fields a client may extend with AppendToItemField.
_APPENDABLE = frozenset(
    {"Body", "Categories", "RequiredAttendees", "OptionalAttendees", "Resources", "Companies", "Contacts"}
)


def get_item(ctx: Context, request: Element) -> Element:
    shape = Shape.parse(request.find(m("ItemShape")))
    root, messages = response("GetItem")

    def handle(out: Element, item_id: Element) -> None:
        render.item(sub(out, m("Items")), ctx.item(item_id), shape)

    each(messages, "GetItem", children(request.find(m("ItemIds"))), handle, container="Items")
    return root


def _split_fields(item: Element) -> tuple[dict[str, Element], dict]:
    fields, extended = {}, {}
    for child in item:
        name = local(child)
        if name == "ExtendedProperty":
            extended[prop_key(child.find(t("ExtendedFieldURI")))] = copy.deepcopy(child)
        elif name in derive.READ_ONLY:
            raise ItemError("ErrorInvalidPropertySet", f"Set action is invalid for property {name}.")
        else:
            fields[name] = copy.deepcopy(child)
    return fields, extended


def _record_meeting_message(ctx: Context, item: StoredItem, kind: str, disposition: str | None) -> None:
    recipients = derive.attendee_addresses(item)
    if item.kind != "CalendarItem" or not recipients or disposition in (None, "SendToNone"):
        return
    item.folder.mailbox.sent.append(SentMessage(kind, item.id, item.text("Subject"), recipients, disposition))
    if kind == "invitation":
        item.fields["MeetingRequestWasSent"].text = "true"


def create_item(ctx: Context, request: Element) -> Element:
    invitations = request.get("SendMeetingInvitations")
    saved = request.find(m("SavedItemFolderId"))
    root, messages = response("CreateItem")

    def handle(out: Element, item: Element) -> None:
        kind = local(item)
        if kind not in _KINDS:
            raise ItemError(
                "ErrorInvalidItemForOperation", f"The test server only stores {_KINDS}, not {kind}."
            )
        if saved is not None:
            folder = ctx.folder(saved[0])
        elif ctx.principal is not None:
            folder = ctx.principal.calendar if kind == "CalendarItem" else ctx.principal.tasks
        else:
            raise ItemError("ErrorMissingEmailAddress", "The request must specify a mailbox.")
        if folder.item_kind != kind:
            raise ItemError(
                "ErrorInvalidItemForOperation", f"A {kind} cannot be saved in {folder.display_name}."
            )
        if kind == "CalendarItem" and invitations is None:
            raise ItemError(
                "ErrorSendMeetingInvitationsRequired",
                "The SendMeetingInvitations attribute is required for calendar items.",
            )
        fields, extended = _split_fields(item)
        stored = writes.create(ctx.store, folder, kind, fields, extended, ctx.actor)
        _record_meeting_message(ctx, stored, "invitation", invitations)
        render.item_id_only(sub(out, m("Items")), stored)

    each(messages, "CreateItem", children(request.find(m("Items"))), handle, container="Items")
    return root


def _field_name(path: Element) -> str:
    if local(path) != "FieldURI":
        raise ItemError(
            "ErrorInvalidPropertyRequest", "Indexed fields do not exist on calendar items or tasks."
        )
    return path.get("FieldURI").split(":")[-1]


def _apply(fields: dict[str, Element], extended: dict, update: Element) -> None:
    action, path = local(update), update[0]
    if local(path) == "ExtendedFieldURI":
        key = prop_key(path)
        if action == "DeleteItemField":
            extended.pop(key, None)
        else:
            extended[key] = copy.deepcopy(update[1].find(t("ExtendedProperty")))
        return
    name = _field_name(path)
    if name in derive.READ_ONLY:
        verb = {"SetItemField": "Set", "AppendToItemField": "Append", "DeleteItemField": "Delete"}[action]
        raise ItemError(f"ErrorInvalidProperty{verb}", f"{verb} action is invalid for property {name}.")
    if action == "DeleteItemField":
        fields.pop(name, None)
        return
    value = update[1].find(t(name))
    if value is None:
        raise ItemError("ErrorInvalidPropertySet", f"The item in the update does not carry {name}.")
    current = fields.get(name)
    if action == "SetItemField" or current is None:
        fields[name] = copy.deepcopy(value)
    elif name not in _APPENDABLE:
        raise ItemError("ErrorInvalidPropertyAppend", f"Append action is invalid for property {name}.")
    elif name == "Body":
        current.text = (current.text or "") + (value.text or "")
    else:
        current.extend(copy.deepcopy(list(value)))


def update_item(ctx: Context, request: Element) -> Element:
    resolution = request.get("ConflictResolution", "AutoResolve")
    notify = request.get("SendMeetingInvitationsOrCancellations")
    root, messages = response("UpdateItem")

    def handle(out: Element, change: Element) -> None:
        item_id = change[0]
        target = ctx.item(item_id)
        stored = ctx.store.items.get(target.id)
        master, original_start = (stored, None) if stored is not None else _master_of(ctx, target)
        given = item_id.get("ChangeKey")
        if resolution == "NeverOverwrite" and given and given != target.change_key:
            raise ItemError(
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the "
                "request does not match the current change key for the item.",
            )
        fields = {k: copy.deepcopy(v) for k, v in target.fields.items()}
        extended = {k: copy.deepcopy(v) for k, v in target.extended.items()}
        for update in children(change.find(t("Updates"))):
            _apply(fields, extended, update)
        writes.check_times(master.kind, fields)
        if original_start is None:
            master.fields, master.extended = fields, extended
        else:
            # Editing one occurrence turns it into an exception of the series.
            override = master.exceptions.setdefault(original_start, {})
            override.update({k: v for k, v in fields.items() if _differs(v, target.fields.get(k))})
        writes.touched(ctx.store, master, ctx.actor)
        _record_meeting_message(ctx, master, "update", notify)
        shown = master if original_start is None else ctx.item(item_id)
        render.item_id_only(sub(out, m("Items")), shown)
        sub(sub(out, m("ConflictResults")), t("Count"), "0")

    each(messages, "UpdateItem", children(request.find(m("ItemChanges"))), handle, container="Items")
    return root


def _differs(a: Element, b: Element | None) -> bool:
    return b is None or etree.tostring(a) != etree.tostring(b)


def _master_of(ctx: Context, view: StoredItem) -> tuple[StoredItem, datetime]:
    parsed = occurrences.parse_occurrence_id(view.id)
    assert parsed is not None, "only occurrence views lack a stored item"
    master_id, original_start = parsed
    return ctx.store.items[master_id], original_start


def delete_item(ctx: Context, request: Element) -> Element:
    cancellations = request.get("SendMeetingCancellations")
    root, messages = response("DeleteItem")

    def handle(out: Element, item_id: Element) -> None:
        # Exchange does not check the ChangeKey of a delete.
        target = ctx.item(item_id)
        if target.id in ctx.store.items:
            _record_meeting_message(ctx, target, "cancellation", cancellations)
            writes.delete(ctx.store, target)
        else:
            master, original_start = _master_of(ctx, target)
            writes.delete_occurrence(ctx.store, master, original_start, ctx.actor)

    each(messages, "DeleteItem", children(request.find(m("ItemIds"))), handle)
    return root
