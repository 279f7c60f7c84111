"""Every change to items goes through here: new ChangeKey, new sequence number, derived fields."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from . import derive, ids, occurrences
from .faults import ItemError
from .recurrence import format_dt, parse_dt, to_utc
from .store import Folder, Store, StoredItem
from .xmlns import Element, t


def touched(store: Store, item: StoredItem, actor: str) -> StoredItem:
    """Record a write of `item` (already changed in place) by the login named `actor`."""
    item.change_key = ids.change_key()
    item.seq = store.next_seq()
    item.modified = datetime.now(UTC)
    item.modified_by = actor
    item.change_count += 1
    derive.refresh(item)
    return item


def create(
    store: Store, folder: Folder, kind: str, fields: dict[str, Element], extended: dict, actor: str
) -> StoredItem:
    item = StoredItem(
        id=ids.item_id(),
        change_key=ids.change_key(),
        kind=kind,
        folder=folder,
        fields=fields,
        extended=extended,
    )
    check_times(kind, fields)
    touched(store, item, actor)
    item.change_count = 1
    item.created_seq = item.seq
    derive.refresh(item)
    folder.items[item.id] = item
    store.items[item.id] = item
    return item


def delete(store: Store, item: StoredItem) -> None:
    folder = item.folder
    del folder.items[item.id]
    del store.items[item.id]
    folder.tombstones[item.id] = (item.created_seq, store.next_seq())


def check_times(kind: str, fields: dict[str, Element]) -> None:
    """Refuse a calendar item that would end before it starts (check before committing fields)."""
    start, end = fields.get("Start"), fields.get("End")
    if kind != "CalendarItem" or start is None or end is None or not (start.text and end.text):
        return
    if parse_dt(end.text) < parse_dt(start.text):
        raise ItemError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")


def _occurrence(master: StoredItem, original_start: datetime) -> occurrences.Occurrence:
    if "Recurrence" not in master.fields:
        raise ValueError(f"{master.id} is not a recurring master")
    occ = occurrences.find(master, original_start=to_utc(original_start))
    if occ is None:
        raise ValueError(f"no occurrence of {master.id} starts at {original_start}")
    return occ


def modify_occurrence(
    store: Store, master: StoredItem, original_start: datetime, actor: str, **changes: str | datetime
) -> StoredItem:
    """As a user moving/editing one occurrence in Outlook: the master gets a ModifiedOccurrence."""
    occ = _occurrence(master, original_start)
    override = master.exceptions.setdefault(occ.original_start, {})
    for name, value in changes.items():
        elem = etree.Element(t(name))
        elem.text = format_dt(value) if isinstance(value, datetime) else value
        override[name] = elem
    return touched(store, master, actor)


def delete_occurrence(store: Store, master: StoredItem, original_start: datetime, actor: str) -> StoredItem:
    """As a user deleting one occurrence in Outlook: the master gets a DeletedOccurrence."""
    occ = _occurrence(master, original_start)
    master.exceptions.pop(occ.original_start, None)
    master.deleted_occurrences.add(occ.original_start)
    return touched(store, master, actor)
