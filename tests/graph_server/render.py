"""Events and tasks as Graph renders them: the stored JSON with the service's own properties and
defaults, times in the preferred zone, bodies in the preferred content type, $select and $expand."""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Any

from . import instances, odata, times
from .instances import Instance
from .store import Mailbox, PropKey, Task, TodoList, prop_key

# Properties of microsoft.graph.event (with outlookItem and entity), for $select.
EVENT_PROPERTIES = (
    "id", "changeKey", "createdDateTime", "lastModifiedDateTime", "categories", "allowNewTimeProposals",
    "attendees", "body", "bodyPreview", "cancelledOccurrences", "end", "hasAttachments", "hideAttendees",
    "iCalUId", "importance", "isAllDay", "isCancelled", "isDraft", "isOnlineMeeting", "isOrganizer",
    "isReminderOn", "location", "locations", "onlineMeeting", "onlineMeetingProvider", "onlineMeetingUrl",
    "organizer", "originalEndTimeZone", "originalStart", "originalStartTimeZone", "recurrence",
    "reminderMinutesBeforeStart", "responseRequested", "responseStatus", "sensitivity", "seriesMasterId",
    "showAs", "start", "subject", "transactionId", "type", "webLink",
)
EVENT_EXPANDS = ("singleValueExtendedProperties", "exceptionOccurrences", "extensions")
# Set by the service, ignored when a client sends them (as Graph does with read-only properties).
EVENT_SERVER_SET = frozenset(
    {
        "id", "changeKey", "createdDateTime", "lastModifiedDateTime", "bodyPreview", "cancelledOccurrences",
        "hasAttachments", "iCalUId", "isCancelled", "isDraft", "isOrganizer", "organizer", "originalEndTimeZone",
        "originalStart", "originalStartTimeZone", "responseStatus", "seriesMasterId", "type", "webLink",
        "onlineMeeting", "onlineMeetingUrl", "@odata.etag", "@odata.context", "@odata.type",
    }
)
_EVENT_DEFAULTS: dict[str, Any] = {
    "categories": [],
    "subject": "",
    "body": {"contentType": "text", "content": ""},
    "importance": "normal",
    "sensitivity": "normal",
    "showAs": "busy",
    "isAllDay": False,
    "isReminderOn": True,
    "reminderMinutesBeforeStart": 15,
    "responseRequested": True,
    "allowNewTimeProposals": True,
    "hideAttendees": False,
    "isOnlineMeeting": False,
    "onlineMeetingProvider": "unknown",
    "attendees": [],
    "location": {"displayName": "", "locationType": "default", "uniqueIdType": "unknown", "address": {}},
    "locations": [],
    "recurrence": None,
}
TASK_PROPERTIES = (
    "id", "title", "body", "bodyLastModifiedDateTime", "categories", "completedDateTime", "createdDateTime",
    "dueDateTime", "hasAttachments", "importance", "isReminderOn", "lastModifiedDateTime", "recurrence",
    "reminderDateTime", "startDateTime", "status",
)
TASK_EXPANDS = ("linkedResources", "extensions", "checklistItems", "attachments")
TASK_SERVER_SET = frozenset(
    {"id", "createdDateTime", "lastModifiedDateTime", "bodyLastModifiedDateTime", "hasAttachments",
     "@odata.etag", "@odata.context"}
)
_TAG = re.compile(r"<[^>]+>")


def body(value: dict[str, Any] | None, wanted: str | None) -> dict[str, Any]:
    """An itemBody converted to the content type `Prefer: outlook.body-content-type` asks for."""
    value = dict(value or {"contentType": "text", "content": ""})
    kind = (value.get("contentType") or "text").lower()
    content = value.get("content") or ""
    if wanted == "text" and kind == "html":
        text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", content)
        value = {"contentType": "text", "content": html.unescape(_TAG.sub("", text)).strip()}
    elif wanted == "html" and kind == "text":
        escaped = html.escape(content).replace("\n", "<br>")
        value = {
            "contentType": "html",
            "content": '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            f"\r\n</head>\r\n<body>\r\n<div>{escaped}</div>\r\n</body>\r\n</html>\r\n",
        }
    return value


def _preview(value: dict[str, Any]) -> str:
    return body(value, "text")["content"][:255]


def _zoned(instant: datetime, written: dict[str, Any], zone: str, all_day: bool) -> dict[str, Any]:
    """An instance's start or end in the zone asked for; `written` is the value it was stored with."""
    if all_day:  # all-day events float: midnight to midnight whatever the zone asked for
        local = instant.astimezone(times.zone(written.get("timeZone") or "UTC")).replace(tzinfo=None)
        return {"dateTime": times.format_local(local), "timeZone": zone}
    return times.render(instant, zone)


def extended_props(props: dict[PropKey, tuple[str, str]], wanted: list[str] | None) -> list[dict[str, str]] | None:
    if wanted is None:
        return None
    found = []
    for prop_id in wanted:
        try:
            key = prop_key(prop_id)
        except ValueError:
            continue
        if key in props:
            written, value = props[key]
            found.append({"id": written, "value": value})
    return found or None


def event(
    instance: Instance,
    mailbox: Mailbox,
    *,
    zone: str = "UTC",
    body_type: str | None = None,
    select: set[str] | None = None,
    expand: odata.Expand | None = None,
) -> dict[str, Any]:
    stored = instance.event
    data = instance.data()
    all_day = bool(data.get("isAllDay"))
    out: dict[str, Any] = {"@odata.etag": f'W/"{instance.change_key}"', "id": instance.id}
    out.update(
        {
            "createdDateTime": times.iso_utc(stored.created),
            "lastModifiedDateTime": times.iso_utc(instance.modified),
            "changeKey": instance.change_key,
            "transactionId": stored.transaction_id,
            "originalStartTimeZone": data["start"].get("timeZone") or "UTC",
            "originalEndTimeZone": data["end"].get("timeZone") or "UTC",
            "iCalUId": stored.ical_uid,
            "isCancelled": False,
            "isOrganizer": True,
            "isDraft": False,
            "hasAttachments": False,
            "type": instance.kind,
            "seriesMasterId": stored.id if instance.kind in ("occurrence", "exception") else None,
            "webLink": f"https://outlook.office365.com/owa/?itemid={instance.id}&exvsurl=1&path=/calendar/item",
            "onlineMeetingUrl": None,
            "onlineMeeting": None,
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "organizer": {"emailAddress": mailbox.address},
        }
    )
    out.update(_EVENT_DEFAULTS)
    out.update(data)  # what clients wrote; writes drop the properties the service sets itself
    out["body"] = body(data.get("body"), body_type)
    out["bodyPreview"] = _preview(data.get("body") or {})
    out["start"] = _zoned(instance.start, data["start"], zone, all_day)
    out["end"] = _zoned(instance.end, data["end"], zone, all_day)
    if instance.original_start is not None:
        out["originalStart"] = times.iso_utc(instance.original_start)
    if instance.kind in ("occurrence", "exception"):
        out["recurrence"] = None
    if select is not None and "cancelledOccurrences" in select and instance.kind == "seriesMaster":
        out["cancelledOccurrences"] = instances.cancelled_ids(stored)
    out = odata.apply_select(out, select, ("id",))
    if expand is not None:
        props = extended_props(stored.extended, expand.extended_ids)
        if props is not None:
            out["singleValueExtendedProperties"] = props
        if "extensions" in expand.names:
            out["extensions"] = [extension(e) for e in stored.extensions.values()]
        if "exceptionOccurrences" in expand.names:
            out["exceptionOccurrences"] = [
                event(i, mailbox, zone=zone, body_type=body_type)
                for i in (instances.occurrence(stored, s) for s in sorted(stored.exceptions))
                if i is not None and instance.kind == "seriesMaster"
            ]
    return out


def extension(value: dict[str, Any]) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.openTypeExtension", "id": value["extensionName"], **value}


def task(stored: Task, *, zone: str = "UTC", select: set[str] | None = None,
         expand: odata.Expand | None = None) -> dict[str, Any]:
    data = stored.data
    out: dict[str, Any] = {
        "@odata.etag": f'W/"{stored.etag}"',
        "importance": "normal",
        "isReminderOn": False,
        "status": "notStarted",
        "title": "",
        "createdDateTime": times.iso_utc(stored.created),
        "lastModifiedDateTime": times.iso_utc(stored.modified),
        "hasAttachments": False,
        "categories": [],
        "id": stored.id,
        "body": {"content": "", "contentType": "text"},
        "bodyLastModifiedDateTime": times.iso_utc(stored.modified),
    }
    out.update(data)
    for name in ("dueDateTime", "startDateTime", "reminderDateTime", "completedDateTime"):
        if data.get(name):
            out[name] = times.render(times.to_utc(data[name]), zone)
    out = odata.apply_select(out, select, ("id",))
    if expand is not None:
        if "linkedResources" in expand.names:
            out["linkedResources"] = list(stored.linked_resources.values())
        if "extensions" in expand.names:
            out["extensions"] = [extension(e) for e in stored.extensions.values()]
        if "checklistItems" in expand.names:
            out["checklistItems"] = []
        if "attachments" in expand.names:
            out["attachments"] = []
    return out


def todo_list(value: TodoList) -> dict[str, Any]:
    return {
        "@odata.etag": f'W/"{value.etag}"',
        "displayName": value.name,
        "isOwner": True,
        "isShared": False,
        "wellknownListName": value.wellknown,
        "id": value.id,
    }
