"""Occurrences and exceptions of a recurring master: their ids, the master's occurrence fields,
and the views GetItem and FindItem's CalendarView return for them."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from . import recurrence
from .recurrence import format_dt, parse_dt
from .store import StoredItem
from .xmlns import sub, t

_PREFIX = b"syncd-occurrence|"
_MASTER_ONLY = (
    "Recurrence",
    "FirstOccurrence",
    "LastOccurrence",
    "ModifiedOccurrences",
    "DeletedOccurrences",
)


def occurrence_id(master_id: str, original_start: datetime) -> str:
    return base64.b64encode(_PREFIX + f"{master_id}|{format_dt(original_start)}".encode()).decode()


def parse_occurrence_id(value: str) -> tuple[str, datetime] | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    if not raw.startswith(_PREFIX):
        return None
    master_id, _, start = raw[len(_PREFIX) :].decode().rpartition("|")
    return master_id, parse_dt(start)


@dataclass(frozen=True)
class Occurrence:
    index: int  # 1-based InstanceIndex within the series
    original_start: datetime
    start: datetime
    end: datetime
    deleted: bool
    modified: bool


def series(master: StoredItem) -> list[Occurrence]:
    start, end = parse_dt(master.text("Start")), parse_dt(master.text("End"))
    zone = recurrence.zone(_zone_id(master))
    starts = recurrence.expand(master.fields["Recurrence"], start, zone) or []
    out = []
    for index, original in enumerate(starts, 1):
        override = master.exceptions.get(original, {})
        occ_start = parse_dt(override["Start"].text) if "Start" in override else original
        occ_end = parse_dt(override["End"].text) if "End" in override else original + (end - start)
        out.append(
            Occurrence(
                index,
                original,
                occ_start,
                occ_end,
                original in master.deleted_occurrences,
                original in master.exceptions,
            )
        )
    return out


def _zone_id(master: StoredItem) -> str | None:
    tz = master.fields.get("StartTimeZone")
    return tz.get("Id") if tz is not None else None


def _info(parent: etree._Element, tag: str, master: StoredItem, occ: Occurrence) -> None:
    info = sub(parent, t(tag))
    sub(info, t("ItemId"), Id=occurrence_id(master.id, occ.original_start), ChangeKey=master.change_key)
    sub(info, t("Start"), format_dt(occ.start))
    sub(info, t("End"), format_dt(occ.end))
    sub(info, t("OriginalStart"), format_dt(occ.original_start))


def refresh_master_fields(master: StoredItem) -> None:
    occurrences = series(master)
    live = [o for o in occurrences if not o.deleted]
    holder = etree.Element("holder")
    if live:
        _info(holder, "FirstOccurrence", master, live[0])
        if recurrence.is_bounded(master.fields["Recurrence"]):
            _info(holder, "LastOccurrence", master, live[-1])
    modified = [o for o in occurrences if o.modified and not o.deleted]
    if modified:
        container = sub(holder, t("ModifiedOccurrences"))
        for occ in modified:
            _info(container, "Occurrence", master, occ)
    deleted = [o for o in occurrences if o.deleted]
    if deleted:
        container = sub(holder, t("DeletedOccurrences"))
        for occ in deleted:
            sub(sub(container, t("DeletedOccurrence")), t("Start"), format_dt(occ.original_start))
    for elem in list(holder):
        master.fields[etree.QName(elem).localname] = elem


def find(
    master: StoredItem, *, original_start: datetime | None = None, index: int | None = None
) -> Occurrence | None:
    for occ in series(master):
        if occ.original_start == original_start or occ.index == index:
            return occ
    return None


def view(master: StoredItem, occ: Occurrence) -> StoredItem:
    """The occurrence or exception as GetItem returns it: the master's fields, its own times and id."""
    fields = {name: copy.deepcopy(elem) for name, elem in master.fields.items() if name not in _MASTER_ONLY}
    fields.update(
        {name: copy.deepcopy(elem) for name, elem in master.exceptions.get(occ.original_start, {}).items()}
    )
    item = StoredItem(
        id=occurrence_id(master.id, occ.original_start),
        change_key=master.change_key,
        kind=master.kind,
        folder=master.folder,
        fields=fields,
        extended={k: copy.deepcopy(v) for k, v in master.extended.items()},
    )
    values = {
        "ItemId": None,
        "Start": format_dt(occ.start),
        "End": format_dt(occ.end),
        "OriginalStart": format_dt(occ.original_start),
        "RecurrenceId": format_dt(occ.original_start),
        "IsRecurring": "true",
        "CalendarItemType": "Exception" if occ.modified else "Occurrence",
        "Duration": recurrence.format_duration(occ.end - occ.start),
    }
    for name, text in values.items():
        elem = etree.Element(t(name))
        elem.text = text
        fields[name] = elem
    fields["ItemId"].attrib.update({"Id": item.id, "ChangeKey": item.change_key})
    return item
