"""FindItem, shallow, with a CalendarView (occurrences expanded) or an IndexedPageItemView, and an
optional Restriction (see :mod:`..restriction`)."""

from __future__ import annotations

from datetime import datetime

from .. import occurrences, render, restriction
from ..context import Context
from ..faults import not_implemented
from ..recurrence import parse_dt
from ..render import Shape
from ..store import Folder, StoredItem
from ..xmlns import Element, m, sub, t, xml_bool
from .common import children, each, response

_UNSUPPORTED = (
    "GroupBy",
    "DistinguishedGroupBy",
    "QueryString",
    "FractionalPageItemView",
    "ContactsView",
    "SeekToConditionPageItemView",
)


def find_item(ctx: Context, request: Element) -> Element:
    # Answering these wrongly would be worse than refusing: a test must not pass on an ignored filter.
    for name in _UNSUPPORTED:
        if request.find(m(name)) is not None:
            raise not_implemented(f"FindItem with {name}")
    if request.get("Traversal") != "Shallow":
        raise not_implemented(f"FindItem with Traversal={request.get('Traversal')}")
    shape = Shape.parse(request.find(m("ItemShape")))
    calendar_view = request.find(m("CalendarView"))
    paged_view = request.find(m("IndexedPageItemView"))
    condition = request.find(m("Restriction"))
    if condition is not None and calendar_view is not None:
        raise not_implemented("FindItem with a Restriction and a CalendarView")
    root, messages = response("FindItem")

    def handle(out: Element, folder_id: Element) -> None:
        folder = ctx.folder(folder_id)
        if calendar_view is not None:
            found, offset = _in_window(folder, calendar_view), None
            limit = int(calendar_view.get("MaxEntriesReturned") or len(found) or 1)
            page = found[:limit]
            last = len(page) == len(found)
        else:
            found = sorted(folder.items.values(), key=lambda i: i.created_seq)
            if condition is not None:
                found = [i for i in found if restriction.matches(i, condition[0])]
            limit = (
                int(paged_view.get("MaxEntriesReturned") or len(found) or 1)
                if paged_view is not None
                else len(found)
            )
            start = int(paged_view.get("Offset") or 0) if paged_view is not None else 0
            if paged_view is not None and paged_view.get("BasePoint") == "End":
                start = max(len(found) - start - limit, 0)
            page = found[start : start + limit]
            offset = str(start + len(page))
            last = start + len(page) >= len(found)
        folder_elem = sub(
            out,
            m("RootFolder"),
            IndexedPagingOffset=offset,
            TotalItemsInView=str(len(found)),
            IncludesLastItemInRange=xml_bool(last),
        )
        items = sub(folder_elem, t("Items"))
        for item in page:
            render.item(items, item, shape)

    each(messages, "FindItem", children(request.find(m("ParentFolderIds"))), handle)
    return root


def _in_window(folder: Folder, view: Element) -> list[StoredItem]:
    window_start, window_end = parse_dt(view.get("StartDate")), parse_dt(view.get("EndDate"))
    found: list[tuple[datetime, StoredItem]] = []
    for item in folder.items.values():
        if "Recurrence" in item.fields:
            for occ in occurrences.series(item):
                if not occ.deleted and occ.start < window_end and occ.end > window_start:
                    found.append((occ.start, occurrences.view(item, occ)))
        elif item.text("Start") and item.text("End"):
            start, end = parse_dt(item.text("Start")), parse_dt(item.text("End"))
            if start < window_end and end > window_start:
                found.append((start, item))
    return [item for _, item in sorted(found, key=lambda pair: pair[0])]
