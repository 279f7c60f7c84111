"""How a CRM activity is recognised on a calendar: its UID and the properties syncd stores there."""

from __future__ import annotations

import uuid

UID_SUFFIX = "@syncd"
ID_NAMESPACE = uuid.UUID("5b7d3c0e-8f43-4d1c-9a57-3c1f2f7a9e10")

#: iCalendar properties syncd writes on every item it owns (and reads back).
X_ID = "X-SYNCD-ID"
X_KIND = "X-SYNCD-KIND"
X_URL = "X-SYNCD-URL"


def uid_for(activity_id: str) -> str:
    """The iCalendar UID (and EWS UID) of a CRM activity: stable, derived from the CRM id."""
    return f"{activity_id}{UID_SUFFIX}"


def activity_id_from_uid(uid: str | None) -> str | None:
    """The CRM id a syncd-made UID carries, or ``None`` for items created elsewhere."""
    if uid and uid.endswith(UID_SUFFIX) and len(uid) > len(UID_SUFFIX):
        return uid[: -len(UID_SUFFIX)]
    return None


def activity_id_for_uid(uid: str) -> str:
    """The activity id of an item created in a calendar: stable, derived from its UID, so the same
    meeting seen in two users' calendars becomes one activity."""
    return f"cal-{uuid.uuid5(ID_NAMESPACE, uid)}"


#: Names the resources syncd creates; apart from ID_NAMESPACE so a resource name is never a UID.
RESOURCE_NAMESPACE = uuid.UUID("c0a4f3e2-6d1b-5e7a-8b9c-2f4e6a8d0c1b")
COPY_UID_SUFFIX = "@syncd-copy"


def resource_name(activity_id: str) -> str:
    """The name of the CalDAV resource syncd creates for an activity: a UUID of the CRM id, so no
    character of the id reaches a URL (a ``/`` opens a folder on one server, ``(`` or ``%`` trouble
    others). Items made under an older name keep it: syncd finds them by href and by UID."""
    return f"{uuid.uuid5(RESOURCE_NAMESPACE, activity_id)}.ics"


def copy_uid(activity_id: str, calendar_owner: str) -> str:
    """The UID of an activity's copy in a participating user's calendar, for a server that refuses the
    owner's UID a second time in one calendar home (RFC 6638 unique-scheduling-object-resource). It
    does not carry the CRM id; the item is paired through X-SYNCD-ID."""
    return f"{uuid.uuid5(ID_NAMESPACE, calendar_owner.casefold() + chr(10) + activity_id)}{COPY_UID_SUFFIX}"
