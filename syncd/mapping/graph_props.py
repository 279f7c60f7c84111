"""What Graph events and To Do tasks share: syncd's properties, the JSON blob, times and CRM fields.

Events carry syncd's data in single-value extended properties of the same property set and names as
the EWS connector's (:mod:`syncd.mapping.ews_props`), so an item syncd made through EWS is found and
read through Graph. The blob has the same keys as EWS's. This module does not import exchangelib
(the Graph connector runs without it), so the set's GUID and names are spelled here again.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from syncd.mapping.carried import NOTHING, Uncarried
from syncd.mapping.ical_time import second_pass
from syncd.mapping.options import (
    MappingOptions,
    importance_from_priority,
    priority_from_importance,
    priority_value,
)
from syncd.mapping.outlook_data import CATEGORY_MAX, text
from syncd.mapping.outlook_recurrence import (
    DAYS,
    ORDINALS,
    OutlookPattern,
    OutlookRange,
    OutlookRecurrence,
    PatternType,
    RangeType,
)
from syncd.mapping.timezones import iana_for_tzid
from syncd.model import Activity

#: syncd's MAPI property set (the one of :data:`syncd.mapping.ews_props.PROPERTY_SET_ID`; never change it).
PROPERTY_SET_ID = "5f3c2b1e-8d4a-4e6b-9c1f-73796e636400"


def property_id(name: str) -> str:
    return f"String {{{PROPERTY_SET_ID}}} Name {name}"


CRM_ID = property_id("syncd-crm-id")
KIND = property_id("syncd-kind")
EXTRA = property_id("syncd-extra")
URL = property_id("syncd-url")
PROPERTY_IDS = (CRM_ID, KIND, EXTRA, URL)
#: ``$expand`` of the properties above (Graph returns only the ones named).
EXPAND_PROPERTIES = "singleValueExtendedProperties($filter=" + " or ".join(f"id eq '{p}'" for p in PROPERTY_IDS) + ")"

SUBJECT_MAX = 255
_GRAPH_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_GRAPH_INDEX = ("first", "second", "third", "fourth", "last")


@dataclass(frozen=True, slots=True)
class ParsedGraphItem:
    """What the mapping read from one event or task (satisfies :class:`syncd.connectors.base.Parsed`)."""

    uid: str | None
    crm_id: str | None
    activity: Activity
    modified_at: datetime | None
    categories: tuple[str, ...]
    uncarried: Uncarried = NOTHING
    """syncd's hidden data the item did not carry (no blob): the CRM keeps its value (:mod:`.carried`)."""


# --- the blob ----------------------------------------------------------------------------------------


def dump_extra(extra: dict[str, Any]) -> str:
    # sort_keys: the same activity always gives the same string, so an unchanged item is not rewritten.
    return json.dumps(extra, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# --- CRM fields shown as categories and importance ---------------------------------------------------


def shown_category(category: str) -> str:
    """A category as Outlook keeps it (see :mod:`.outlook_data`'s category functions)."""
    return category[:CATEGORY_MAX]


def type_category(type_: str, options: MappingOptions) -> str:
    """The category shown for a CRM type, as Outlook keeps it. The exact type rides in the blob."""
    return shown_category(options.type_category(type_))


def importance_for(activity: Activity, options: MappingOptions) -> str:
    prio = options.priority.get(activity.priority) if activity.priority else None
    return importance_from_priority(prio).lower()


def priority_in(importance: object, options: MappingOptions, extra: dict[str, Any], carried: bool) -> str | None:
    shown = str(importance or "normal").capitalize()
    carried_prio = text(extra.get("priority"))

    def forward(value: str | None) -> str:
        return importance_from_priority(options.priority.get(value) if value else None)

    if carried and forward(carried_prio) == shown:
        return carried_prio
    if not carried and shown == "Normal":
        return None  # normal is Outlook's "not set"
    return priority_value(options, carried_prio, priority_from_importance(shown))


# --- time --------------------------------------------------------------------------------------------


def zone_of(name: object) -> ZoneInfo | None:
    """The zone of a Graph time zone name (Windows or IANA), ``None`` for one syncd cannot place."""
    if not isinstance(name, str) or not name:
        return None
    iana = iana_for_tzid(name)
    return ZoneInfo(iana) if iana else None


def local_text(value: datetime) -> str:
    return value.replace(tzinfo=None, microsecond=0).isoformat()


def dtz(value: datetime, zone_name: str) -> dict[str, str]:
    """A dateTimeTimeZone: ``value`` as wall-clock time in the named zone; in UTC when it lies in the
    second pass of a repeated hour (a clock set back), where a wall time is ambiguous (an hour early
    if taken as the first pass, as RFC 5545 does)."""
    zone = zone_of(zone_name) or ZoneInfo("UTC")
    local = value.astimezone(zone)
    if second_pass(local):
        return {"dateTime": local_text(value.astimezone(UTC)), "timeZone": "UTC"}
    return {"dateTime": local_text(local), "timeZone": zone_name}


def day_dtz(value: date, zone_name: str) -> dict[str, str]:
    return {"dateTime": f"{value.isoformat()}T00:00:00", "timeZone": zone_name}


def instant(value: object) -> datetime | None:
    """An aware UTC datetime from a dateTimeTimeZone (or an Edm.DateTimeOffset string)."""
    if isinstance(value, str):
        text_ = value.strip().replace("Z", "+00:00")
        parsed = _parse_local(text_)
        return None if parsed is None else (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    if not isinstance(value, dict):
        return None
    local = _parse_local(str(value.get("dateTime") or ""))
    if local is None:
        return None
    zone = zone_of(value.get("timeZone") or "UTC") or ZoneInfo("UTC")
    return local.replace(tzinfo=zone).astimezone(UTC)


_FRACTION = re.compile(r"\.(\d+)")


def _parse_local(value: str) -> datetime | None:
    # Graph writes 7 fractional digits; Python reads at most 6.
    cleaned = _FRACTION.sub(lambda m: "." + m.group(1)[:6], value)
    try:
        return datetime.fromisoformat(cleaned)
    except ValueError:
        return None


def day_of(value: object, zone: ZoneInfo) -> date | None:
    """The date of an all-day boundary. Graph gives it as midnight in the requested zone; whether that
    midnight is the event's own (floating) or the instant shown in UTC, the nearest midnight in the
    event's zone is the day meant."""
    at = instant(value)
    if at is None:
        return None
    return (at.astimezone(zone) + timedelta(hours=12)).date()


# --- recurrence --------------------------------------------------------------------------------------


def recurrence_json(rec: OutlookRecurrence, zone_name: str) -> dict[str, Any]:
    p, r = rec.pattern, rec.range
    pattern: dict[str, Any] = {"type": p.type, "interval": p.interval}
    if p.type == "weekly":
        pattern["daysOfWeek"] = [_GRAPH_DAYS[DAYS.index(d)] for d in p.days]
        pattern["firstDayOfWeek"] = _GRAPH_DAYS[DAYS.index(p.first_day_of_week)]
    if p.type in ("relativeMonthly", "relativeYearly"):
        pattern["daysOfWeek"] = [_GRAPH_DAYS[DAYS.index(d)] for d in p.days]
        pattern["index"] = _GRAPH_INDEX[ORDINALS.index(p.index)]
    if p.type in ("absoluteMonthly", "absoluteYearly"):
        pattern["dayOfMonth"] = p.day_of_month
    if p.type in ("absoluteYearly", "relativeYearly"):
        pattern["month"] = p.month
    range_: dict[str, Any] = {"type": r.type, "startDate": r.start.isoformat(), "recurrenceTimeZone": zone_name}
    if r.type == "endDate" and r.end is not None:
        range_["endDate"] = r.end.isoformat()
    if r.type == "numbered":
        range_["numberOfOccurrences"] = r.count
    return {"pattern": pattern, "range": range_}


def recurrence_from_json(value: dict[str, Any]) -> OutlookRecurrence:
    """Graph's patternedRecurrence as plain data (``ValueError`` for a shape syncd cannot read)."""
    p, r = value.get("pattern") or {}, value.get("range") or {}
    kind = str(p.get("type"))
    if kind not in ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"):
        raise ValueError(f"recurrence pattern {kind!r}")
    days = tuple(DAYS[_GRAPH_DAYS.index(str(d).lower())] for d in p.get("daysOfWeek") or ())
    relative = kind.startswith("relative")
    pattern = OutlookPattern(
        type=_pattern_type(kind),
        interval=int(p.get("interval") or 1),
        days=tuple(d for d in DAYS if d in days) if relative else days,
        first_day_of_week=DAYS[_GRAPH_DAYS.index(str(p.get("firstDayOfWeek") or "sunday").lower())]
        if kind == "weekly"
        else "MO",
        day_of_month=int(p.get("dayOfMonth") or 0) if kind.startswith("absolute") and kind != "daily" else 0,
        month=int(p.get("month") or 0) if kind.endswith("Yearly") else 0,
        index=ORDINALS[_GRAPH_INDEX.index(str(p.get("index") or "first").lower())] if relative else 0,
    )
    range_type = str(r.get("type") or "noEnd")
    if range_type not in ("noEnd", "endDate", "numbered"):
        raise ValueError(f"recurrence range {range_type!r}")
    start = date.fromisoformat(str(r.get("startDate")))
    end = date.fromisoformat(str(r["endDate"])) if range_type == "endDate" else None
    count = int(r.get("numberOfOccurrences") or 0) if range_type == "numbered" else 0
    return OutlookRecurrence(pattern, OutlookRange(_range_type(range_type), start, end, count))


def _pattern_type(kind: str) -> PatternType:
    types: dict[str, PatternType] = {
        "daily": "daily", "weekly": "weekly", "absoluteMonthly": "absoluteMonthly",
        "relativeMonthly": "relativeMonthly", "absoluteYearly": "absoluteYearly", "relativeYearly": "relativeYearly",
    }
    return types[kind]


def _range_type(kind: str) -> RangeType:
    types: dict[str, RangeType] = {"noEnd": "noEnd", "endDate": "endDate", "numbered": "numbered"}
    return types[kind]


def recurrence_key(rec: OutlookRecurrence | None) -> object:
    """What a recurrence means: the first day of the week does not matter to a weekly interval of 1."""
    if rec is None:
        return None
    p = rec.pattern
    if p.type != "weekly" or p.interval == 1:
        p = OutlookPattern(p.type, p.interval, tuple(sorted(p.days, key=DAYS.index)), "MO", p.day_of_month, p.month,
                           p.index)
    return p, rec.range


# --- small helpers -----------------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")
_HEAD = re.compile(r"<(head|style|script)\b.*?</\1>", re.S | re.I)


def body_text(body: object) -> str | None:
    if not isinstance(body, dict):
        return None
    content = body.get("content")
    if not isinstance(content, str) or not content:
        return None
    if str(body.get("contentType", "text")).lower() == "html":
        return html.unescape(_TAG.sub("", _HEAD.sub("", content))).strip() or None
    return content


def utc(value: object) -> datetime | None:
    return instant(value) if isinstance(value, str) else None


def properties(item: dict[str, Any]) -> dict[str, str]:
    """syncd's extended properties of an item, by id (Graph compares ids case-insensitively)."""
    wanted = {p.casefold(): p for p in PROPERTY_IDS}
    found: dict[str, str] = {}
    for prop in item.get("singleValueExtendedProperties") or ():
        if isinstance(prop, dict) and isinstance(prop.get("id"), str) and isinstance(prop.get("value"), str):
            key = wanted.get(prop["id"].casefold())
            if key:
                found[key] = prop["value"]
    return found
