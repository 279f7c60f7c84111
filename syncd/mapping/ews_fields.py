"""Sensitivity, show-as and what rides in syncd's blob <-> EWS Sensitivity, LegacyFreeBusyStatus and the blob.

* sensitivity: ``Sensitivity`` Normal/Private/Confidential; Outlook's Personal reads as private. Normal
  is also EWS's "not stated" (every item has a Sensitivity), so without a carried value it reads as
  ``None``; the blob carries the CRM's exact value, which wins while it still shows as Exchange shows.
* show-as (events; a task has no free/busy): ``LegacyFreeBusyStatus``, which the status table also
  drives (``[mapping] status``, e.g. postponed -> Tentative). ``None`` lets the status decide; a set
  show-as overrides it. Inbound, the carried show-as and status win while together they still give
  what Exchange shows; else the user changed it: WorkingElsewhere is busy, and a value the status
  explains reads as ``None``.
* attachments (links), the CRM's own fields and the organizer when it is not the owner ride in the
  blob only (EWS keeps an item's organizer read-only); so does a task's location (see ews.py).
  A blob without them (written by an older syncd, or none at all) did not carry them.
* one occurrence's own reminder, sensitivity and show-as: the exception item's ReminderIsSet /
  ReminderMinutesBeforeStart, Sensitivity and LegacyFreeBusyStatus, read as the override's while they
  differ from the series'. Its show-as rides in the blob beside its status, as the series' does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from syncd.errors import ItemError
from syncd.mapping.outlook_recurrence import OccurrenceChange
from syncd.model import Activity, Attachment, JsonScalar, Participant, ParticipantKind, Sensitivity, ShowAs
from syncd.store.rules import extra_problems

_SENSITIVITY_OUT = {
    Sensitivity.NORMAL: "Normal", Sensitivity.PRIVATE: "Private", Sensitivity.CONFIDENTIAL: "Confidential",
}
_SENSITIVITY_IN = {
    "Private": Sensitivity.PRIVATE, "Personal": Sensitivity.PRIVATE, "Confidential": Sensitivity.CONFIDENTIAL,
}
FREE_BUSY = {ShowAs.BUSY: "Busy", ShowAs.FREE: "Free", ShowAs.TENTATIVE: "Tentative", ShowAs.OUT_OF_OFFICE: "OOF"}
_SHOW_AS_IN = {**{v: k for k, v in FREE_BUSY.items()}, "WorkingElsewhere": ShowAs.BUSY}

#: Blob keys of the fields EWS has no element for (added in revision 0005 of the store).
K_SENSITIVITY, K_SHOW_AS, K_ATTACHMENTS, K_FIELDS, K_ORGANIZER, K_LOCATION = (
    "sensitivity", "show_as", "attachments", "crm_fields", "organizer", "location",
)
#: Blob key of each occurrence's own show-as, by its original start (beside ``occurrence_status``).
K_OCCURRENCE_SHOW_AS = "occurrence_show_as"


def sensitivity_out(value: Sensitivity | None) -> str:
    return _SENSITIVITY_OUT[value] if value is not None else "Normal"


def sensitivity_in(shown: str | None, blob: Mapping[str, Any], carried: bool) -> Sensitivity | None:
    kept = _enum(Sensitivity, blob.get(K_SENSITIVITY)) if carried else None
    if carried and sensitivity_out(kept) == (shown or "Normal"):
        return kept
    return _SENSITIVITY_IN.get(shown or "")


def free_busy_out(show_as: ShowAs | None, by_status: str) -> str:
    return FREE_BUSY[show_as] if show_as is not None else by_status


def show_as_in(
    shown: str | None, blob: Mapping[str, Any], carried: bool, carried_status_shows: str, read_status_shows: str
) -> ShowAs | None:
    """``carried_status_shows``: the free/busy of the carried status; ``read_status_shows``: of the
    status as read now (which may be the user's new one)."""
    kept = _enum(ShowAs, blob.get(K_SHOW_AS)) if carried else None
    if carried and free_busy_out(kept, carried_status_shows) == shown:
        return kept
    if shown is None or shown in ("NoData", read_status_shows):
        return None
    return _SHOW_AS_IN.get(shown)


def refuse_late_reminders(activity: Activity) -> None:
    """Exchange rings a reminder before an appointment only: one after it (of the series or of one
    occurrence) is refused for the item rather than moved."""
    late = activity.reminder_minutes is not None and activity.reminder_minutes < 0
    occurrence = next((
        o for o in (activity.recurrence.overrides if activity.recurrence else ())
        if o.reminder_minutes is not None and o.reminder_minutes < 0
    ), None)
    if late or occurrence is not None:
        where = "" if late or occurrence is None else f" (the occurrence of {occurrence.recurrence_id})"
        raise ItemError(
            activity.id, "reminder_minutes", f"Exchange cannot ring a reminder after an appointment starts{where}"
        )


def occurrence_sensitivity_in(shown: str | None, series_shown: str | None) -> Sensitivity | None:
    """An occurrence's own sensitivity: ``None`` while it shows as its series does."""
    own = _SENSITIVITY_IN.get(shown or "", Sensitivity.NORMAL)
    return None if own == _SENSITIVITY_IN.get(series_shown or "", Sensitivity.NORMAL) else own


def occurrence_reminder_in(own: int | None, series: int | None) -> tuple[int | None, bool]:
    """An occurrence's own reminder as ``(minutes, off)`` (see :class:`~syncd.model.Override`)."""
    if own == series:
        return None, False
    return own, own is None


def occurrence_fields_out(change: OccurrenceChange) -> dict[str, Any]:
    """An occurrence's reminder, sensitivity and show-as as exchangelib fields, those the change sets."""
    fields: dict[str, Any] = {}
    if change.sensitivity is not None:
        fields["sensitivity"] = sensitivity_out(change.sensitivity)
    if change.reminder is not None:
        (minutes,) = change.reminder
        fields["reminder_is_set"] = minutes is not None
        fields["reminder_minutes_before_start"] = minutes or 0
    if change.show_as is not None:
        fields["legacy_free_busy_status"] = FREE_BUSY[change.show_as]
    return fields


def show_as_read(shown: str | None) -> ShowAs | None:
    """The show-as a free/busy value is (``NoData`` or none: none)."""
    return _SHOW_AS_IN.get(shown or "")


def blob_fields(activity: Activity) -> dict[str, Any]:
    fields: dict[str, Any] = {
        K_SENSITIVITY: str(activity.sensitivity) if activity.sensitivity else None,
        K_SHOW_AS: str(activity.show_as) if activity.show_as else None,
        K_ATTACHMENTS: [{"url": a.url, "name": a.name} for a in activity.attachments],
        "categories": list(activity.categories),
        K_FIELDS: dict(activity.extra),
        K_ORGANIZER: None if activity.organizer is None else {
            "kind": str(activity.organizer.kind), "email": activity.organizer.email, "name": activity.organizer.name,
        },
    }
    return fields


def attachments_in(blob: Mapping[str, Any]) -> tuple[Attachment, ...]:
    out = []
    for entry in blob.get(K_ATTACHMENTS) or ():
        if isinstance(entry, dict) and isinstance(entry.get("url"), str) and entry["url"].strip():
            name = entry.get("name")
            out.append(Attachment(entry["url"], name if isinstance(name, str) else None))
    return tuple(out)


def crm_fields_in(blob: Mapping[str, Any]) -> dict[str, JsonScalar]:
    value = blob.get(K_FIELDS)
    if not isinstance(value, dict) or extra_problems(value):
        return {}  # edited by hand into what the CRM cannot keep: none
    return value


def organizer_in(blob: Mapping[str, Any], carried: bool, item_organizer: Any, users: Mapping[str, Any],
                 classify: Callable[[str], ParticipantKind], user_email: str) -> Participant | None:
    """The carried organizer; on an item without the blob, Exchange's organizer unless it is the
    calendar's user or another CRM user (then it is the owner): an invitation from outside the CRM."""
    if carried and K_ORGANIZER in blob:
        entry = blob.get(K_ORGANIZER)
        if not isinstance(entry, dict) or not isinstance(entry.get("email"), str) or not entry["email"].strip():
            return None
        kind = _enum(ParticipantKind, entry.get("kind")) or ParticipantKind.EXTERNAL
        name = entry.get("name")
        return Participant(kind, entry["email"], name if isinstance(name, str) else None)
    email = getattr(item_organizer, "email_address", None)
    if not email or email.casefold() == user_email.casefold() or email.casefold() in users:
        return None
    return Participant(classify(email), email, getattr(item_organizer, "name", None) or None)


def uncarried_keys(blob: Mapping[str, Any] | None, is_event: bool) -> set[str]:
    """Fields of the blob's later keys that this blob does not carry (an older syncd's, or none)."""
    missing = {name for name, key in (("attachments", K_ATTACHMENTS), ("extra", K_FIELDS)) if key not in (blob or {})}
    if blob is not None and K_ORGANIZER not in blob:
        missing.add("organizer")
    if not is_event:
        missing.add("show_as")
        if K_LOCATION not in (blob or {}):
            missing.add("location")
    return missing


def _enum(enum: Any, value: object) -> Any:
    try:
        return enum(value) if isinstance(value, str) else None
    except ValueError:
        return None
