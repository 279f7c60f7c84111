"""How a CRM activity is recognised on a calendar: its UID and the properties syncd stores there."""

from __future__ import annotations

UID_SUFFIX = "@syncd"

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
