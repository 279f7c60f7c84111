"""Fields Exchange computes itself, refreshed after every write of an item."""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from . import ids, occurrences, schema
from .recurrence import format_dt, format_duration, parse_dt
from .store import StoredItem
from .xmlns import Element, parse_bool, sub, t, xml_bool

# Clients may not write these: Exchange answers ErrorInvalidPropertySet.
READ_ONLY = frozenset(
    {
        "ItemId",
        "ParentFolderId",
        "DateTimeReceived",
        "Size",
        "IsSubmitted",
        "IsDraft",
        "IsFromMe",
        "IsResend",
        "IsUnmodified",
        "DateTimeSent",
        "DateTimeCreated",
        "ResponseObjects",
        "DisplayCc",
        "DisplayTo",
        "DisplayBcc",
        "HasAttachments",
        "EffectiveRights",
        "LastModifiedName",
        "LastModifiedTime",
        "IsAssociated",
        "ConversationId",
        "DateTimeStamp",
        "IsMeeting",
        "IsCancelled",
        "IsRecurring",
        "MeetingRequestWasSent",
        "CalendarItemType",
        "MyResponseType",
        "Organizer",
        "ConflictingMeetingCount",
        "AdjacentMeetingCount",
        "ConflictingMeetings",
        "AdjacentMeetings",
        "Duration",
        "AppointmentReplyTime",
        "AppointmentState",
        "FirstOccurrence",
        "LastOccurrence",
        "ModifiedOccurrences",
        "DeletedOccurrences",
        "ChangeCount",
        "IsComplete",
        "IsTeamTask",
        "StatusDescription",
        "DelegationState",
        "Delegator",
        "IsAssignmentEditable",
        "Owner",
    }
)
# Date-times Exchange returns in UTC whatever offset the client wrote.
_UTC_FIELDS = ("Start", "End", "ReminderDueBy", "DueDate", "StartDate", "CompleteDate", "AssignedTime")
_TASK_STATUS = {
    "NotStarted": "Not Started",
    "InProgress": "In Progress",
    "Completed": "Completed",
    "WaitingOnOthers": "Waiting on someone else",
    "Deferred": "Deferred",
}


def _set(item: StoredItem, name: str, text: str | None = None, **attrs: str) -> Element:
    elem = etree.Element(t(name), attrs)
    elem.text = text
    item.fields[name] = elem
    return elem


def _default(item: StoredItem, name: str, text: str) -> None:
    if name not in item.fields:
        _set(item, name, text)


def _attendee_names(item: StoredItem, name: str) -> list[str]:
    holder = item.fields.get(name)
    if holder is None:
        return []
    names = []
    for mailbox in holder.iter(t("Mailbox")):
        label = mailbox.findtext(t("Name")) or mailbox.findtext(t("EmailAddress")) or ""
        names.append(label)
    return names


def attendee_addresses(item: StoredItem) -> tuple[str, ...]:
    return tuple(
        address
        for name in ("RequiredAttendees", "OptionalAttendees", "Resources")
        if (holder := item.fields.get(name)) is not None
        for address in (m.findtext(t("EmailAddress")) or "" for m in holder.iter(t("Mailbox")))
    )


def refresh(item: StoredItem) -> None:
    # Exchange answers canonical values whatever lexical form the client wrote ("1" -> "true").
    for name in schema.boolean_elements(f"{item.kind}Type") & item.fields.keys():
        item.fields[name].text = xml_bool(parse_bool(item.fields[name].text))
    for name in _UTC_FIELDS:
        elem = item.fields.get(name)
        if elem is not None and elem.text:
            elem.text = format_dt(parse_dt(elem.text))
    folder = item.folder
    _set(item, "ItemId", Id=item.id, ChangeKey=item.change_key)
    _set(item, "ParentFolderId", Id=folder.id, ChangeKey=folder.change_key)
    _default(item, "ItemClass", "IPM.Appointment" if item.kind == "CalendarItem" else "IPM.Task")
    _default(item, "Sensitivity", "Normal")
    _default(item, "Importance", "Normal")
    created = format_dt(item.created)
    for name in ("DateTimeReceived", "DateTimeSent", "DateTimeCreated"):
        _set(item, name, created)
    for name in (
        "IsSubmitted",
        "IsDraft",
        "IsFromMe",
        "IsResend",
        "IsUnmodified",
        "HasAttachments",
        "IsAssociated",
    ):
        _set(item, name, "false")
    _default(item, "ReminderIsSet", "true" if item.kind == "CalendarItem" else "false")
    _default(item, "ReminderMinutesBeforeStart", "15" if item.kind == "CalendarItem" else "0")
    _default(item, "Culture", "en-US")
    _set(item, "LastModifiedName", item.modified_by or folder.mailbox.display_name)
    _set(item, "LastModifiedTime", format_dt(item.modified))
    if item.kind == "CalendarItem":
        _refresh_calendar_item(item)
    else:
        _refresh_task(item)
    item.fields.pop("Size", None)
    size = sum(len(etree.tostring(e)) for e in [*item.fields.values(), *item.extended.values()])
    _set(item, "Size", str(size))


def _refresh_calendar_item(item: StoredItem) -> None:
    mailbox = item.folder.mailbox
    _default(item, "UID", ids.uid())
    _set(item, "DateTimeStamp", format_dt(item.modified))
    _default(item, "IsAllDayEvent", "false")
    _default(item, "LegacyFreeBusyStatus", "Busy")
    required, optional = (
        _attendee_names(item, "RequiredAttendees"),
        _attendee_names(item, "OptionalAttendees"),
    )
    is_meeting = bool(attendee_addresses(item))
    _set(item, "DisplayTo", "; ".join(required))
    _set(item, "DisplayCc", "; ".join(optional))
    _set(item, "IsMeeting", xml_bool(is_meeting))
    _default(item, "IsCancelled", "false")
    _default(item, "MeetingRequestWasSent", "false")
    _default(item, "IsResponseRequested", "true")
    recurring = "Recurrence" in item.fields
    # Exchange documents (and keeps) IsRecurring false on the organizer's recurring master; only its
    # occurrences and exceptions say true (learn.microsoft.com, web-service-reference/isrecurring).
    _set(item, "IsRecurring", "false")
    _set(item, "CalendarItemType", "RecurringMaster" if recurring else "Single")
    _set(item, "MyResponseType", "Organizer")
    organizer = sub(_set(item, "Organizer"), t("Mailbox"))
    sub(organizer, t("Name"), mailbox.display_name)
    sub(organizer, t("EmailAddress"), mailbox.smtp)
    sub(organizer, t("RoutingType"), "SMTP")
    if "Start" in item.fields and "End" in item.fields:
        start, end = parse_dt(item.text("Start")), parse_dt(item.text("End"))
        _set(item, "Duration", format_duration(end - start))
    _default(item, "AppointmentSequenceNumber", "0")
    _set(item, "AppointmentState", "1" if is_meeting else "0")
    for name in ("FirstOccurrence", "LastOccurrence", "ModifiedOccurrences", "DeletedOccurrences"):
        item.fields.pop(name, None)
    if recurring:
        occurrences.refresh_master_fields(item)
    else:
        item.exceptions.clear()
        item.deleted_occurrences.clear()


def _refresh_task(item: StoredItem) -> None:
    _default(item, "Status", "NotStarted")
    _default(item, "PercentComplete", "0")
    status = item.text("Status")
    if status == "Completed":
        _set(item, "PercentComplete", "100")
        _default(item, "CompleteDate", format_dt(datetime.now(item.modified.tzinfo)))
    elif float(item.text("PercentComplete") or 0) >= 100:
        status = "Completed"
        _set(item, "Status", status)
        _default(item, "CompleteDate", format_dt(item.modified))
    else:
        item.fields.pop("CompleteDate", None)
    _set(item, "ChangeCount", str(item.change_count))
    _set(item, "IsComplete", xml_bool(status == "Completed"))
    _set(item, "IsRecurring", xml_bool("Recurrence" in item.fields))
    _set(item, "IsTeamTask", "false")
    _set(item, "Owner", item.folder.mailbox.display_name)
    _set(item, "StatusDescription", _TASK_STATUS.get(status or "", status or ""))
