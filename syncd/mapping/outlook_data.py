"""syncd's own data on an Outlook item, read the same way whether EWS or Graph carried it: both keep
it in one extended property (the same property set), so an item one connector wrote reads through the
other."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypedDict

from syncd.mapping.ews_fields import FREE_BUSY, attachments_in, blob_fields, crm_fields_in, show_as_read
from syncd.mapping.options import MappingOptions, crm_value
from syncd.model import (
    Activity,
    Attachment,
    Direction,
    JsonScalar,
    Kind,
    Moment,
    Participant,
    ParticipantKind,
    Regarding,
    RegardingKind,
    Response,
    Role,
    ShowAs,
)

DIRECTION_CATEGORY = {Direction.INBOUND: "Inbound", Direction.OUTBOUND: "Outbound"}
EXTRA_VERSION = 1
ADDRESS_MAX = 255
#: Outlook keeps a category of at most this many characters (exchangelib refuses a longer one).
CATEGORY_MAX = 255


def text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def enum(cls: Any, value: object) -> Any:
    try:
        return cls(value) if value is not None else None
    except ValueError:
        return None


def direction_in(
    categories: Sequence[str], options: MappingOptions, extra: dict[str, Any], carried: bool
) -> Direction | None:
    if carried:
        return enum(Direction, extra.get("direction"))
    if options.direction_categories:
        shown = {c.casefold() for c in categories}
        for direction, cat in DIRECTION_CATEGORY.items():
            if cat.casefold() in shown:
                return direction
    return None


def regarding_in(extra: dict[str, Any]) -> tuple[Regarding, ...]:
    out: list[Regarding] = []
    for entry in extra.get("regarding") or ():
        if isinstance(entry, dict):
            kind = enum(RegardingKind, entry.get("kind"))
            ident = text(entry.get("id"))
            if kind and ident:
                out.append(Regarding(kind, ident, text(entry.get("name"))))
    return tuple(out)


# The category functions take ``shown``: a category as the server keeps it (cut to length; EWS also
# replaces what XML cannot carry), so that what syncd wrote is recognised when it is read back.


def managed_categories(
    kind: Kind | None, type_: str | None, direction: Direction | None, options: MappingOptions,
    shown: Callable[[str], str],
) -> list[str]:
    """The categories syncd shows for a call, the CRM type and the direction."""
    cats: list[str] = []
    if kind == Kind.CALL:
        cats.append(options.call_category)
    if type_:
        cats.append(shown(options.type_category(type_)))
    if direction and options.direction_categories:
        cats.append(DIRECTION_CATEGORY[direction])
    return list(dict.fromkeys(cats))


def categories_out(activity: Activity, options: MappingOptions, shown: Callable[[str], str]) -> list[str]:
    """What Outlook shows: syncd's categories (call, type, direction), then the activity's own."""
    managed = managed_categories(activity.kind, activity.type, activity.direction, options, shown)
    folded = {c.casefold() for c in managed}
    own = dict.fromkeys(shown(c) for c in activity.categories)
    return managed + [c for c in own if c.casefold() not in folded]


def own_categories(
    categories: Sequence[str], activity: Activity, options: MappingOptions, blob: dict[str, Any] | None,
    shown: Callable[[str], str],
) -> tuple[str, ...]:
    """The item's categories but those syncd shows for the type, a call and the direction; the CRM's
    exact ones (carried) while Outlook still shows them (cut to its length)."""
    managed = {
        c.casefold() for c in managed_categories(activity.kind, activity.type, activity.direction, options, shown)
    }
    own = tuple(dict.fromkeys(c for c in categories if c.casefold() not in managed))
    exact = blob.get("categories") if blob is not None else None
    if (isinstance(exact, list) and all(isinstance(c, str) for c in exact)
            and tuple(dict.fromkeys(shown(c) for c in exact)) == own):
        return tuple(exact)
    return own


def type_in(
    categories: Sequence[str], options: MappingOptions, extra: dict[str, Any], carried: bool,
    shown: Callable[[str], str],
) -> str | None:
    """The carried CRM type while Outlook still shows its category; else the type a category names."""
    folded = {c.casefold() for c in categories}
    carried_type = text(extra.get("type")) if carried else None
    if carried_type and shown(options.type_category(carried_type)).casefold() in folded:
        return carried_type
    return options.type_from_categories(list(categories))


class HiddenFields(TypedDict):
    """An activity's fields that an Outlook item shows nowhere (but the direction, as a category)."""

    direction: Direction | None
    place: str | None
    project: str | None
    regarding: tuple[Regarding, ...]
    parent_id: str | None
    close_reason: str | None
    attachments: tuple[Attachment, ...]
    extra: dict[str, JsonScalar]


def hidden_in(categories: Sequence[str], options: MappingOptions, extra: dict[str, Any], carried: bool) -> HiddenFields:
    """What syncd's blob carries for these fields, read alike from every Outlook item (EWS or Graph,
    event or task), as keyword arguments of :class:`~syncd.model.Activity`."""
    return HiddenFields(
        direction=direction_in(categories, options, extra, carried),
        place=text(extra.get("place")),
        project=text(extra.get("project")),
        regarding=regarding_in(extra),
        parent_id=text(extra.get("parent_id")),
        close_reason=text(extra.get("close_reason")),
        attachments=attachments_in(extra),
        extra=crm_fields_in(extra),
    )


def carried_or_shown(carried: bool, value: str | None, shown: Any, forward: Any, inbound: Any) -> str | None:
    """:func:`crm_value`, where a carried ``None`` (no CRM value) counts as carried too."""
    if carried and forward(value) == shown:
        return value
    return crm_value(value, shown, forward, inbound)


def moment_to_json(value: Moment | None) -> str | None:
    return None if value is None else value.isoformat()


def moment_from_json(value: object) -> Moment | None:
    """Inverse of :func:`moment_to_json`; anything malformed reads as ``None`` (the item still maps)."""
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def instant_key(moment: Moment) -> str | None:
    return moment_to_json(moment.astimezone(UTC) if isinstance(moment, datetime) else moment)


def by_instant(carried: object) -> dict[str | None, Any]:
    """syncd's per-occurrence data by the occurrence's instant: it was written with the CRM's form of the
    time (UTC from the store), and is read against Outlook's, in the item's zone."""
    if not isinstance(carried, dict):
        return {}
    return {instant_key(m) if (m := moment_from_json(k)) is not None else k: v for k, v in carried.items()}


def occurrence_look(
    cancelled: bool, shown: str | None, carried: str | None, carried_show: ShowAs | None,
    series_free_busy: str | None, options: MappingOptions,
) -> tuple[str | None, ShowAs | None]:
    """The CRM status and show-as of one occurrence Outlook shows with free/busy ``shown`` (EWS's names;
    ``cancelled``: its organizer cancelled it): the carried ones while together they still give that
    free/busy (a cancelled occurrence is free); an occurrence its organizer cancelled is cancelled. Else
    the user changed it in Outlook: the carried status while it alone explains it, and a free/busy
    neither it nor the series explains is the occurrence's own show-as."""
    target = options.status_target(carried) if carried is not None else None
    if cancelled:
        keep = target is not None and target.ews_cancelled
        return (carried if keep else options.status_inbound.ews_cancelled), None

    def shows(status: str | None, show: ShowAs | None) -> str | None:
        if show is not None:
            return FREE_BUSY[show]
        return options.status_target(status).ews_free_busy if status is not None else series_free_busy

    if shows(carried, carried_show) == shown:
        return carried, carried_show
    status = carried if target is not None and target.ews_free_busy == shown else None
    return status, None if shows(status, None) == shown else show_as_read(shown)


def load_extra(raw: object) -> dict[str, Any] | None:
    """The blob as a dict; ``None`` when absent (item made outside syncd) or unreadable (edited by hand)."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def blob(activity: Activity, attendees_sent: bool) -> dict[str, Any]:
    """syncd's data for the item: every field Outlook cannot hold exactly, and the exact CRM values
    behind lossy tables. Participants not given to the server as attendees ride in full."""
    extra: dict[str, Any] = {
        "v": EXTRA_VERSION,
        "owner": activity.owner,
        "tz": activity.timezone,
        "status": activity.status,
        "type": activity.type,
        "priority": activity.priority,
        "direction": str(activity.direction) if activity.direction else None,
        "place": activity.place,
        "project": activity.project,
        "close_reason": activity.close_reason,
        "parent_id": activity.parent_id,
        "all_day": activity.all_day,
        "rrule": activity.recurrence.rrule if activity.recurrence else None,
        # An occurrence's exact CRM status (a cancelled one): Outlook shows only its free/busy.
        "occurrence_status": {
            moment_to_json(o.recurrence_id): o.status for o in activity.recurrence.overrides if o.status is not None
        } if activity.recurrence else {},
        # An occurrence's own show-as beside its status: together they give the free/busy Outlook shows.
        "occurrence_show_as": {
            moment_to_json(o.recurrence_id): str(o.show_as) for o in activity.recurrence.overrides if o.show_as
        } if activity.recurrence else {},
        "regarding": [{"kind": str(r.kind), "id": r.id, "name": r.name} for r in activity.regarding],
        "participants": [
            _participant_json(p, full=not (attendees_sent and activity.is_event and is_attendee(p)))
            for p in activity.participants
        ],
    }
    if activity.is_event and activity.all_day:
        extra["end"] = moment_to_json(activity.effective_end)
    if not activity.is_event:
        extra.update(
            start=moment_to_json(activity.start),
            end=moment_to_json(activity.end),
            due=moment_to_json(activity.due),
            completed_at=moment_to_json(activity.completed_at),
            reminder=activity.reminder_minutes,
            location=activity.location,  # neither an EWS task nor a To Do task has a location
        )
    extra.update(blob_fields(activity))
    return extra


def _participant_json(p: Participant, full: bool) -> dict[str, Any]:
    if not full:
        # Attendees carry name, role and response themselves; the blob keeps their order and kind.
        if p.kind is ParticipantKind.RESOURCE:
            return {"email": p.email, "kind": str(p.kind), "resource_role": str(p.role)}  # resources have none
        return {"email": p.email, "kind": str(p.kind)}
    return {"email": p.email, "kind": str(p.kind), "name": p.name, "role": str(p.role), "response": str(p.response)}


def is_attendee(p: Participant) -> bool:
    """The server can invite it: exchangelib takes addresses up to 255 characters (the CRM keeps 320);
    a longer one rides in the blob like a participant without e-mail."""
    return p.email is not None and len(p.email) <= ADDRESS_MAX


def participants_in(attendees: dict[str, Participant], extra: dict[str, Any]) -> tuple[Participant, ...]:
    """The blob's participants in their order, with the attendees Outlook shows (``attendees`` by
    case-folded address) for the short entries; attendees the blob does not name were added in Outlook."""
    attendees = dict(attendees)
    result: list[Participant] = []
    for entry in extra.get("participants") or ():
        if not isinstance(entry, dict):
            continue
        kind = enum(ParticipantKind, entry.get("kind")) or ParticipantKind.EXTERNAL
        email = (text(entry.get("email")) or "").strip() or None
        if email and "role" not in entry:
            found = attendees.pop(email.casefold(), None)
            if found is not None:  # else removed in Outlook
                booked = enum(Role, entry.get("resource_role")) if found.kind is ParticipantKind.RESOURCE else None
                result.append(Participant(kind, found.email, found.name, booked or found.role, found.response))
            continue
        if email:
            attendees.pop(email.casefold(), None)
        name = text(entry.get("name"))
        if email is None and not (name or "").strip():
            continue
        if email is None and kind is ParticipantKind.USER:
            kind = ParticipantKind.EXTERNAL
        result.append(
            Participant(
                kind=kind,
                email=email,
                name=name,
                role=enum(Role, entry.get("role")) or Role.REQUIRED,
                response=enum(Response, entry.get("response")) or Response.NEEDS_ACTION,
            )
        )
    result.extend(attendees.values())
    return tuple(result)
