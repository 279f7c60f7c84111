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
