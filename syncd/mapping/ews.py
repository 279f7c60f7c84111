"""Activity <-> exchangelib ``CalendarItem`` / ``Task``; pure functions, no I/O.

Outbound: :func:`to_ews` builds a new, unsaved item; :func:`apply_to_ews` sets the fields of an item read
from Exchange and returns the names to pass as ``update_fields``. Inbound: :func:`from_ews`.

What goes where:

* appointment and call -> CalendarItem (a call also carries ``options.call_category``); task -> Task.
* Every item carries syncd's extended properties (:mod:`syncd.mapping.ews_props`): the CRM id, the kind,
  the CRM URL and a JSON blob with what EWS has no element for (place, project, direction, close
  reason, parent id, regarding, participants without e-mail and every participant's kind, the exact
  CRM status/type/priority, the exact IANA zone, the exact RRULE, and for tasks the exact start, end,
  due and completion times and the reminder). Inbound, a carried value wins while it still maps onto
  what Exchange shows (the rule of :func:`syncd.mapping.options.crm_value`); once a user changed the
  item in Outlook, the standard field decides.
* status -> LegacyFreeBusyStatus (events) or Task Status; IsCancelled is read-only in EWS (set by
  cancelling a meeting), so it is read, never written. priority -> Importance; type, call and
  (optionally) direction -> Categories; reminder -> ReminderIsSet/ReminderMinutesBeforeStart.
* owner: the Organizer of an item is read-only in EWS (it is the mailbox that created it), so the
  owner travels in the blob; an item made in Outlook gets its organizer, else the calendar's owner.
* participants with an e-mail -> Required/OptionalAttendees (responses mapped both ways; Exchange
  itself keeps responses up to date), matched inbound case-insensitively against ``ctx.directory``; a
  resource (room, equipment) -> Resources.
* sensitivity -> Sensitivity, show-as -> LegacyFreeBusyStatus (over the status table's), the CRM's own
  categories -> Categories beside syncd's (exact in the blob, Exchange cuts them to 255 characters);
  attachments (links), the CRM's own fields and an outside organizer ride in the blob: see
  :mod:`.ews_fields`. An item without the blob did not carry them: :attr:`ParsedEwsItem.uncarried`.
* recurrence: :mod:`syncd.mapping.ews_recurrence`. Deleted and modified occurrences are read
  inbound (pass the fetched exception items as ``occurrences`` to get their subject/location/body);
  outbound they need separate operations, listed by :func:`~syncd.mapping.ews_recurrence.occurrence_changes`
  (a cancelled occurrence is shown free; its exact status travels in the blob). An occurrence's own
  reminder, Sensitivity and LegacyFreeBusyStatus are its override's (:mod:`.ews_fields`). An Exchange
  series has one pattern: RDATEs, several RRULEs and a change to every later occurrence kept as a range
  (``Override.this_and_future``) are refused per item, as is a reminder after the start (of the series
  or of one occurrence).
* times: a time whose zone offset has seconds (local mean time, Amsterdam before 1937) is sent as its
  UTC instant, an all-day bound then at the offset cut to whole hours; UTC with ``+00:00``, as
  exchangelib writes years before 1000 without their leading zeros otherwise.
* a task's location (EWS tasks have none) travels in the blob.

Lossy by nature of EWS (a round trip normalises these): an all-day ``end == start`` reads back as the
exclusive next day; an empty description or location reads back as ``None``; an override field equal
to the series' value reads back as ``None`` (inherited), an exception equal to the series in all of them
as no override; a timed event without a zone is stored in UTC.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from exchangelib import CalendarItem, Task
from exchangelib.errors import UnknownTimeZone
from exchangelib.ewsdatetime import EWSDate, EWSDateTime, EWSTimeZone
from exchangelib.properties import Attendee, Body, HTMLBody, Mailbox
from exchangelib.recurrence import TaskRecurrence
from exchangelib.util import safe_xml_value

from syncd.errors import ItemError
from syncd.mapping.accepted import storable
from syncd.mapping.carried import NOTHING, Uncarried
from syncd.mapping.context import MappingContext
from syncd.mapping.ews_fields import (
    K_OCCURRENCE_SHOW_AS,
    free_busy_out,
    occurrence_reminder_in,
    occurrence_sensitivity_in,
    organizer_in,
    refuse_late_reminders,
    sensitivity_in,
    sensitivity_out,
    show_as_in,
    uncarried_keys,
)
from syncd.mapping.ews_props import dump_extra, register_extended_properties
from syncd.mapping.ews_recurrence import (
    UnsupportedRecurrence,
    from_ews_recurrence,
    recurrence_key,
    to_ews_recurrence,
)
from syncd.mapping.ical_time import second_pass
from syncd.mapping.identity import activity_id_for_uid, activity_id_from_uid, uid_for
from syncd.mapping.options import (
    MappingOptions,
    importance_from_priority,
    priority_from_importance,
    priority_value,
)
from syncd.mapping.outlook_data import (
    CATEGORY_MAX,
    blob,
    by_instant,
    carried_or_shown,
    categories_out,
    enum,
    hidden_in,
    instant_key,
    is_attendee,
    load_extra,
    moment_from_json,
    occurrence_look,
    own_categories,
    participants_in,
    text,
    type_in,
)
from syncd.mapping.outlook_recurrence import one_rule
from syncd.model import (
    Activity,
    Kind,
    Moment,
    Override,
    Participant,
    ParticipantKind,
    Recurrence,
    Response,
    Role,
    ShowAs,
)

__all__ = ["ParsedEwsItem", "apply_to_ews", "from_ews", "register_extended_properties", "to_ews"]

log = structlog.get_logger(__name__)

_RESPONSE_OUT = {
    Response.ACCEPTED: "Accept",
    Response.DECLINED: "Decline",
    Response.TENTATIVE: "Tentative",
    Response.NEEDS_ACTION: "NoResponseReceived",
}
_RESPONSE_IN = {
    "Accept": Response.ACCEPTED,
    "Organizer": Response.ACCEPTED,
    "Decline": Response.DECLINED,
    "Tentative": Response.TENTATIVE,
}
_SUBJECT_MAX = 255  # EWS Subject limit


@dataclass(frozen=True)
class ParsedEwsItem:
    item_id: str | None
    changekey: str | None
    uid: str | None
    crm_id: str | None
    """From syncd's extended property, else from a syncd-made UID."""
    activity: Activity
    modified_at: datetime | None
    """LastModifiedTime, aware UTC."""
    categories: tuple[str, ...]
    uncarried: Uncarried = NOTHING
    """syncd's hidden data the item did not carry (no blob): the CRM keeps its value (:mod:`.carried`)."""


# --- outbound ----------------------------------------------------------------------------------------


def to_ews(activity: Activity, ctx: MappingContext, account_tz: EWSTimeZone | str | None = None) -> CalendarItem | Task:
    """A new, unsaved item for ``activity``.

    ``account_tz`` (the mailbox's zone) places all-day events and task dates when the activity has no
    zone of its own; it defaults to the calendar owner's zone. The organizer cannot be set: Exchange
    makes the mailbox that saves the item its organizer.
    """
    register_extended_properties()
    fields = _fields(activity, ctx, account_tz)
    if activity.is_event:
        return CalendarItem(uid=uid_for(activity.id), **fields)
    return Task(**fields)


def apply_to_ews(
    item: CalendarItem | Task,
    activity: Activity,
    ctx: MappingContext,
    account_tz: EWSTimeZone | str | None = None,
) -> list[str]:
    """Set ``activity`` on an item read from Exchange; return the changed field names for ``update_fields``.

    A user's categories are the activity's own (``categories``); an unchanged recurrence is left alone (rewriting it
    would make Exchange drop the series' exceptions). An item of the other class (an appointment that
    became a task) raises :class:`ItemError`: the connector must replace it.
    """
    register_extended_properties()
    wanted = CalendarItem if activity.is_event else Task
    if type(item) is not wanted:
        raise ItemError(_ref(item), "kind", f"a {activity.kind} cannot be stored as an EWS {type(item).__name__}")
    fields = _fields(activity, ctx, account_tz)
    if isinstance(item, CalendarItem) and item.type in ("Occurrence", "Exception"):
        fields.pop("recurrence", None)
    changed: list[str] = []
    for name, value in fields.items():
        if not _same(name, getattr(item, name), value):
            setattr(item, name, value)
            changed.append(name)
    return changed


def _fields(activity: Activity, ctx: MappingContext, account_tz: EWSTimeZone | str | None) -> dict[str, Any]:
    if activity.kind not in (Kind.APPOINTMENT, Kind.CALL, Kind.TASK):
        raise ItemError(activity.id, "kind", f"{activity.kind} activities are not synced to Exchange")
    if activity.timezone_definition is not None:
        raise ItemError(
            activity.id, "timezone",
            f"Exchange cannot express a calendar's own time zone ({activity.timezone!r}, which no IANA zone "
            "follows); the item is left alone rather than moved to another zone's days and hours",
        )
    options = ctx.options
    zone_name = activity.timezone or _zone_key(account_tz) or ctx.default_timezone
    categories = categories_out(activity, options, _shown_category)
    prio = options.priority.get(activity.priority) if activity.priority else None
    fields: dict[str, Any] = {
        "subject": _subject(activity),
        "body": Body(activity.description) if activity.description else None,
        "categories": categories or None,
        "importance": importance_from_priority(prio),
        "sensitivity": sensitivity_out(activity.sensitivity),
        "syncd_crm_id": activity.id,
        "syncd_kind": str(activity.kind),
        "syncd_url": options.crm_url.format(id=activity.id) if options.crm_url else None,
    }
    if activity.is_event:
        fields.update(_event_fields(activity, options, zone_name))
    else:
        fields.update(_task_fields(activity, options, zone_name))
    fields["syncd_extra"] = dump_extra(blob(activity, attendees_sent=True))
    return fields


def _subject(activity: Activity) -> str:
    if len(activity.subject) > _SUBJECT_MAX:
        log.warning("ews.subject.truncated", item=activity.id, length=len(activity.subject))
    return activity.subject[:_SUBJECT_MAX]


def _event_fields(activity: Activity, options: MappingOptions, zone_name: str) -> dict[str, Any]:
    if activity.start is None:
        raise ItemError(activity.id, "start", "an appointment or call needs a start")
    if activity.all_day:
        tz = _ews_zone(zone_name, activity.id)
        first = _as_date(activity.start)
        end = activity.effective_end
        last = _as_date(end) - timedelta(days=1) if end is not None else first
        # exchangelib takes inclusive all-day end dates and sends the exclusive midnight itself.
        last = max(last, first)
        start_v: Any = _all_day_bound(first, tz)
        end_v: Any = _all_day_bound(last, tz)
        if isinstance(end_v, EWSDateTime):
            end_v = _all_day_bound(last + timedelta(days=1), tz)  # a time is sent as is: the exclusive end
    else:
        tz = _ews_zone(activity.timezone or "UTC", activity.id)
        start_dt = _aware(activity.start, activity.id, "start")
        end_dt = _aware(activity.end, activity.id, "end") if activity.end is not None else start_dt
        start_v, end_v = _ews_datetime(start_dt, tz), _ews_datetime(end_dt, tz)
    people = [p for p in activity.participants if is_attendee(p) and p.kind is not ParticipantKind.RESOURCE]
    required = [_attendee(p) for p in people if p.role == Role.REQUIRED]
    optional = [_attendee(p) for p in people if p.role == Role.OPTIONAL]
    # A room or equipment is a resource attendee: Exchange books it (its own response comes back).
    resources = [_attendee(p) for p in activity.participants if is_attendee(p) and p.kind is ParticipantKind.RESOURCE]
    target = options.status_target(activity.status)
    recurrence = None
    if activity.recurrence is not None:
        recurrence = to_ews_recurrence(
            one_rule(activity), activity.start, ZoneInfo(tz.key), item=activity.id
        )
    refuse_late_reminders(activity)
    return {
        "start": start_v,
        "end": end_v,
        "is_all_day": activity.all_day,
        "_start_timezone": tz,
        "_end_timezone": tz,
        "legacy_free_busy_status": free_busy_out(activity.show_as, target.ews_free_busy),
        "location": activity.location or None,
        "reminder_is_set": activity.reminder_minutes is not None,
        "reminder_minutes_before_start": activity.reminder_minutes or 0,
        "required_attendees": required or None,
        "optional_attendees": optional or None,
        "resources": resources or None,
        "recurrence": recurrence,
    }


def _task_fields(activity: Activity, options: MappingOptions, zone_name: str) -> dict[str, Any]:
    zone = ZoneInfo(_ews_zone(zone_name, activity.id).key)
    status = options.status_target(activity.status).ews_task_status
    percent = {"Completed": Decimal(100), "NotStarted": Decimal(0)}.get(status, Decimal(50))
    anchor = activity.due if activity.due is not None else activity.start
    recurrence = None
    if activity.recurrence is not None:
        if anchor is None:
            raise ItemError(activity.id, "RRULE", "a recurring task needs a start or due date")
        dtstart = activity.start if activity.start is not None else anchor
        recurrence = to_ews_recurrence(one_rule(activity), dtstart, zone, task=True, item=activity.id)
    reminder_at = None
    if activity.reminder_minutes is not None and anchor is not None:
        at = anchor if isinstance(anchor, datetime) else datetime.combine(anchor, time(), tzinfo=zone)
        reminder_at = _ews_datetime(at - timedelta(minutes=activity.reminder_minutes), EWSTimeZone("UTC"))
    return {
        "status": status,
        "percent_complete": percent,
        "due_date": _local_ews_date(activity.due, zone),
        "start_date": _local_ews_date(activity.start, zone),
        "reminder_is_set": activity.reminder_minutes is not None,
        "reminder_due_by": reminder_at,
        "recurrence": recurrence,
    }


def _attendee(p: Participant) -> Attendee:
    return Attendee(mailbox=Mailbox(email_address=p.email, name=p.name), response_type=_RESPONSE_OUT[p.response])


def _shown_category(category: str) -> str:
    """A category as Exchange keeps it (see :func:`_type_category`); the exact one rides in the blob."""
    return safe_xml_value(category)[:CATEGORY_MAX]


def _type_category(type_: str, options: MappingOptions) -> str:
    """The category shown for a CRM type, as Exchange keeps it: cut to length, characters XML cannot
    carry replaced the way exchangelib does. The exact type rides in the blob."""
    return _shown_category(options.type_category(type_))


def _same(name: str, current: Any, wanted: Any) -> bool:
    if name in ("required_attendees", "optional_attendees", "resources"):
        return _attendee_key(current) == _attendee_key(wanted)
    if name == "recurrence":
        return recurrence_key(current) == recurrence_key(wanted)
    if name in ("_start_timezone", "_end_timezone"):
        return getattr(current, "ms_id", None) == getattr(wanted, "ms_id", None)
    if name == "body":
        return (str(current) if current else None) == (str(wanted) if wanted else None)
    if name == "categories":
        return list(current or ()) == list(wanted or ())
    if isinstance(current, datetime) != isinstance(wanted, datetime):
        return False  # a date never equals a datetime here: timed <-> all-day is a change
    return bool(current == wanted)


def _attendee_key(attendees: Iterable[Attendee] | None) -> list[tuple[str, str | None, str | None]]:
    return [
        ((a.mailbox.email_address or "").casefold(), a.mailbox.name, a.response_type) for a in attendees or ()
    ]


# --- inbound -----------------------------------------------------------------------------------------


def from_ews(
    item: CalendarItem | Task, ctx: MappingContext, occurrences: Sequence[CalendarItem] = ()
) -> ParsedEwsItem:
    """Read an item as an activity.

    ``occurrences`` are the exception items of a recurring master (fetched by the connector with
    GetItem on the ModifiedOccurrences' ids); without them an override has only its new start and end.
    Raises :class:`ItemError` when the item cannot be read (e.g. a pattern syncd cannot express).
    """
    register_extended_properties()
    ref = _ref(item)
    if not isinstance(item, (CalendarItem, Task)):
        raise ItemError(ref, None, f"{type(item).__name__} items are not synced")
    raw_extra = load_extra(getattr(item, "syncd_extra", None))
    carried = raw_extra is not None
    extra = raw_extra or {}
    uid = getattr(item, "uid", None)
    crm_id = getattr(item, "syncd_crm_id", None) or activity_id_from_uid(uid)
    categories = tuple(item.categories or ())
    options = ctx.options
    try:
        if isinstance(item, CalendarItem):
            fields = _event_in(item, ctx, extra, carried, occurrences)
        else:
            fields = _task_in(item, options, extra, carried, ctx.default_timezone)
    except (ValueError, TypeError, KeyError) as exc:
        raise ItemError(ref, None, f"unreadable: {exc}") from exc
    activity = Activity(
        id=crm_id or activity_id_for_uid(uid or ref),
        subject=item.subject or "",
        owner=_owner(item, ctx, extra),
        description=_text(item.body),
        type=type_in(categories, options, extra, carried, _shown_category),
        priority=_priority_in(item.importance, options, extra, carried),
        **hidden_in(categories, options, extra, carried),
        updated_at=_utc(item.last_modified_time),
        created_at=_utc(item.datetime_created),
        sensitivity=sensitivity_in(item.sensitivity, extra, carried),
        **fields,
    )
    activity = activity.replace(
        categories=own_categories(categories, activity, options, raw_extra, _shown_category),
        organizer=organizer_in(extra, carried, getattr(item, "organizer", None), ctx.directory.users,
                               ctx.directory.classify, ctx.owner.email),
    )
    activity = storable(activity, ref)
    return ParsedEwsItem(
        item_id=item.id,
        changekey=item.changekey,
        uid=uid,
        crm_id=crm_id,
        activity=activity,
        modified_at=_utc(item.last_modified_time),
        categories=categories,
        uncarried=_uncarried(item, activity, options, raw_extra),
    )


def _uncarried(
    item: CalendarItem | Task, activity: Activity, options: MappingOptions, blob: dict[str, Any] | None
) -> Uncarried:
    """What of syncd's data this item lacks: no blob at all (a client or a copy that dropped it), or
    one from a syncd that knew fewer fields."""
    missing = uncarried_keys(blob, activity.is_event)
    if blob is not None:
        return Uncarried(fields=frozenset(missing))
    missing |= {"place", "project", "close_reason", "regarding", "parent_id"}
    if not activity.is_event:
        missing.add("end")  # a task's dates Outlook shows; its end only syncd's blob
    shown: dict[str, Any] = {}
    folded = {c.casefold() for c in item.categories or ()}
    if options.direction_categories:
        shown["direction"] = lambda crm: activity.direction == crm.direction
    else:
        missing.add("direction")
    if isinstance(item, CalendarItem):
        free_busy = item.legacy_free_busy_status

        def shows(crm: Activity) -> bool:
            # What syncd would write for the CRM's version: its show-as, else its status's free/busy.
            by_status = options.status_target(crm.status).ews_free_busy
            return not item.is_cancelled and free_busy_out(crm.show_as, by_status) == free_busy

        shown["status"] = shown["show_as"] = shows
    else:
        task_status = item.status
        shown["status"] = lambda crm: options.status_target(crm.status).ews_task_status == task_status
    importance = item.importance
    shown["priority"] = lambda crm: importance_from_priority(
        options.priority.get(crm.priority) if crm.priority else None) == (importance or "Normal")
    shown["type"] = lambda crm: (
        activity.type is None if crm.type is None else _type_category(crm.type, options).casefold() in folded
    )

    def same_categories(crm: Activity) -> bool:
        # The CRM's own categories as Exchange keeps them (cut to length), the CRM type's aside.
        type_shown = _type_category(crm.type, options).casefold() if crm.type else None
        own = tuple(c for c in activity.categories if c.casefold() != type_shown)
        return tuple(dict.fromkeys(_shown_category(c) for c in crm.categories)) == own

    shown["categories"] = same_categories
    kinds = frozenset(p.key for p in activity.participants if p.email)
    return Uncarried(
        fields=frozenset(missing), shown=shown, type_category=lambda v: _type_category(v, options), kinds=kinds,
        hidden_people=lambda p: not is_attendee(p),
    )


def _event_in(
    item: CalendarItem, ctx: MappingContext, extra: dict[str, Any], carried: bool, occurrences: Sequence[CalendarItem]
) -> dict[str, Any]:
    options = ctx.options
    ref = _ref(item)
    shown_tz = item._start_timezone
    carried_tz = text(extra.get("tz"))
    if carried and _zone_ms_id(carried_tz or "UTC") == getattr(shown_tz, "ms_id", None):
        zone_name = carried_tz
    else:
        zone_name = None if shown_tz is None or shown_tz.key == "UTC" else shown_tz.key
    zone = ZoneInfo(zone_name or "UTC")
    first = item.first_occurrence
    raw_start = item.start if item.start is not None else getattr(first, "start", None)
    raw_end = item.end if item.end is not None else getattr(first, "end", None)
    all_day = bool(item.is_all_day)
    if all_day:
        day_zone = ZoneInfo(shown_tz.key) if shown_tz is not None else zone
        start = _to_date(raw_start, day_zone, end=False)
        end = _all_day_end(_to_date(raw_end, day_zone, end=True), moment_from_json(extra.get("end")), day_zone)
        zone_name = carried_tz if carried else None
    else:
        start = _in_zone(raw_start, zone)
        end = _in_zone(raw_end, zone)
    carried_status = text(extra.get("status"))
    carried_show_as = enum(ShowAs, extra.get("show_as")) if carried else None
    if item.is_cancelled:
        keep = carried and options.status_target(carried_status).ews_cancelled
        status = carried_status if keep else options.status_inbound.ews_cancelled
    else:
        status = carried_or_shown(
            carried,
            carried_status,
            item.legacy_free_busy_status,
            # A show-as the CRM set decides what Exchange shows, whatever the status.
            lambda v: free_busy_out(carried_show_as, options.status_target(v).ews_free_busy),
            options.status_inbound.ews_free_busy,
        )
    show_as = show_as_in(
        item.legacy_free_busy_status, extra, carried, options.status_target(carried_status).ews_free_busy,
        options.status_target(status).ews_free_busy,
    )
    is_call = options.call_category.casefold() in {c.casefold() for c in item.categories or ()}
    kind = Kind.CALL if is_call else Kind.APPOINTMENT
    recurrence = None
    if item.recurrence is not None and start is not None:
        rec_zone = ZoneInfo(shown_tz.key) if shown_tz is not None else zone
        series = _Series(status, show_as, item.legacy_free_busy_status, item.sensitivity,
                         item.reminder_minutes_before_start if item.reminder_is_set else None)
        recurrence = _recurrence_in(item, start, end, rec_zone, extra, occurrences, all_day, ref, options, series)
    return {
        "kind": kind,
        "start": start,
        "end": end,
        "all_day": all_day,
        "timezone": zone_name,
        "status": status,
        "show_as": show_as,
        "location": item.location or None,
        "reminder_minutes": item.reminder_minutes_before_start if item.reminder_is_set else None,
        "recurrence": recurrence,
        "participants": _participants_in(item, ctx, extra),
    }


def _recurrence_in(
    item: CalendarItem,
    start: Moment,
    end: Moment | None,
    zone: ZoneInfo,
    extra: dict[str, Any],
    occurrences: Sequence[CalendarItem],
    all_day: bool,
    ref: str,
    options: MappingOptions,
    series: _Series,
) -> Recurrence:
    rule = _rule_in(item.recurrence, start, zone, extra, ref)
    statuses = extra.get("occurrence_status")
    carried_statuses = by_instant(statuses)
    shows = extra.get(K_OCCURRENCE_SHOW_AS)
    carried_shows = by_instant(shows)

    def moment(value: datetime | None, is_end: bool = False) -> Moment | None:
        if value is None:
            return None
        return _to_date(value, zone, end=False) if all_day else _in_zone(value, zone)

    exdates = tuple(
        m for m in (moment(d.start) for d in item.deleted_occurrences or ()) if m is not None
    )
    fetched = {_instant(o.original_start): o for o in occurrences if o.original_start is not None}
    duration = (end - start) if end is not None else timedelta(0)
    overrides: list[Override] = []
    for occ in item.modified_occurrences or ():
        original = moment(occ.original_start)
        if original is None:
            continue
        exc = fetched.get(_instant(occ.original_start))
        new_start = moment(occ.start)
        new_end = _to_date(occ.end, zone, end=False) if all_day and occ.end else moment(occ.end)
        key = instant_key(original)
        status, show_as = _occurrence_look(
            exc, text(carried_statuses.get(key)), enum(ShowAs, carried_shows.get(key)), series, options
        )
        reminder, reminder_off = (None, False) if exc is None else occurrence_reminder_in(
            exc.reminder_minutes_before_start if exc.reminder_is_set else None, series.reminder
        )
        own = Override(
            recurrence_id=original,
            start=new_start if new_start != original else None,
            end=new_end if new_end != original + duration else None,
            subject=_differs(exc.subject if exc else None, item.subject),
            description=_differs(_text(exc.body) if exc else None, _text(item.body)),
            location=_differs(exc.location if exc else None, item.location),
            status=status,
            reminder_minutes=reminder,
            reminder_off=reminder_off,
            sensitivity=occurrence_sensitivity_in(exc.sensitivity, series.sensitivity) if exc else None,
            show_as=show_as,
        )
        # An exception that shows nothing of its own (one given back to the series) is no override.
        if own != Override(original):
            overrides.append(own)
    return Recurrence(rrule=rule, exdates=exdates, overrides=tuple(overrides))


@dataclass(frozen=True, slots=True)
class _Series:
    """What the series itself is and shows, that an occurrence's own values are told apart from."""

    status: str | None
    show_as: ShowAs | None
    free_busy: str | None
    sensitivity: str | None
    reminder: int | None


def _occurrence_look(
    exc: CalendarItem | None, carried: str | None, carried_show: ShowAs | None, series: _Series,
    options: MappingOptions,
) -> tuple[str | None, ShowAs | None]:
    """The CRM status and show-as of one occurrence (:func:`~syncd.mapping.outlook_data.occurrence_look`);
    the carried ones while its exception item was not fetched."""
    if exc is None:
        return carried, carried_show
    return occurrence_look(bool(exc.is_cancelled), exc.legacy_free_busy_status, carried, carried_show,
                           series.free_busy, options)


def _rule_in(rec: Any, start: Moment, zone: ZoneInfo, extra: dict[str, Any], ref: str) -> str:
    rule = from_ews_recurrence(rec, start, zone, item=ref)
    carried_rule = text(extra.get("rrule"))
    if carried_rule and carried_rule != rule:
        # The CRM's own spelling of the rule wins while it still means the pattern Exchange shows.
        try:
            again = to_ews_recurrence(carried_rule, start, zone, task=isinstance(rec, TaskRecurrence))
        except UnsupportedRecurrence:
            return rule
        if recurrence_key(again) == recurrence_key(rec):
            return carried_rule
    return rule


def _task_in(
    item: Task, options: MappingOptions, extra: dict[str, Any], carried: bool, default_zone: str
) -> dict[str, Any]:
    # The zone the dates were written in (see _fields): the activity's, else the calendar owner's.
    zone = ZoneInfo(_ews_zone_quiet(text(extra.get("tz")) or default_zone).key) if carried else ZoneInfo("UTC")
    all_day = bool(extra.get("all_day")) if carried else True
    shown_status = item.status
    status = carried_or_shown(
        carried,
        text(extra.get("status")),
        shown_status,
        lambda v: options.status_target(v).ews_task_status,
        options.status_inbound.ews_task_status,
    )
    due = _task_date_in(item.due_date, extra.get("due") if carried else None, zone, timed=not all_day)
    start = _task_date_in(item.start_date, extra.get("start") if carried else None, zone, timed=not all_day)
    end = moment_from_json(extra.get("end")) if carried else None
    if end is not None and start is not None and (
        isinstance(end, datetime) != isinstance(start, datetime) or end < start
    ):
        end = None  # Outlook moved the start past the CRM's end, which it does not show
    unchanged_status = carried and options.status_target(text(extra.get("status"))).ews_task_status == shown_status
    if unchanged_status:
        completed_at = moment_from_json(extra.get("completed_at"))
    elif shown_status == "Completed":
        completed_at = _utc(item.complete_date)
    else:
        completed_at = None
    reminder = _task_reminder_in(item, extra, carried, due if due is not None else start, zone)
    recurrence = None
    if item.recurrence is not None:
        anchor = start if start is not None else due
        if anchor is None:
            raise ItemError(_ref(item), "Recurrence", "a recurring task without start or due date")
        recurrence = Recurrence(rrule=_rule_in(item.recurrence, anchor, zone, extra, _ref(item)))
    return {
        "kind": Kind.TASK,
        "start": start,
        "end": end,
        "due": due,
        "all_day": all_day,
        "timezone": text(extra.get("tz")) if carried else None,
        "status": status,
        "completed_at": completed_at if isinstance(completed_at, datetime) else None,
        "reminder_minutes": reminder,
        "recurrence": recurrence,
        "location": text(extra.get("location")) if carried else None,
        "participants": _participants_in(None, None, extra),
    }


def _task_date_in(shown: date | None, carried_json: object, zone: ZoneInfo, timed: bool) -> Moment | None:
    """The CRM's value while Outlook still shows its date; else the shown date, at the CRM's time of
    day for a timed task (a date alone would break the rule that a timed task has times)."""
    carried = moment_from_json(carried_json)
    if shown is None:
        return None
    if carried is not None and _local_date(carried, zone) == shown and isinstance(carried, datetime) == timed:
        return carried
    day = date(shown.year, shown.month, shown.day)
    if not timed:
        return day
    clock = carried.astimezone(zone).time() if isinstance(carried, datetime) else time()
    return datetime.combine(day, clock, tzinfo=zone)


def _task_reminder_in(
    item: Task, extra: dict[str, Any], carried: bool, anchor: Moment | None, zone: ZoneInfo
) -> int | None:
    carried_minutes = extra.get("reminder") if carried else None
    if not item.reminder_is_set:
        return None
    if isinstance(carried_minutes, int):
        return carried_minutes
    if item.reminder_due_by is None or anchor is None:
        return None
    at = anchor if isinstance(anchor, datetime) else datetime.combine(anchor, time(), tzinfo=zone)
    return round((at - item.reminder_due_by).total_seconds() / 60)  # negative: after the due moment


def _participants_in(
    item: CalendarItem | None, ctx: MappingContext | None, extra: dict[str, Any]
) -> tuple[Participant, ...]:
    attendees: dict[str, Participant] = {}
    if item is not None and ctx is not None:
        groups = ((Role.REQUIRED, item.required_attendees, False), (Role.OPTIONAL, item.optional_attendees, False),
                  (Role.REQUIRED, item.resources, True))
        for role, group, resource in groups:
            for a in group or ():
                email = a.mailbox.email_address if a.mailbox else None
                if not email or email.casefold() in attendees:
                    continue
                attendees[email.casefold()] = Participant(
                    kind=ParticipantKind.RESOURCE if resource else ctx.directory.classify(email),
                    email=email,
                    name=a.mailbox.name or None,
                    role=role,
                    response=_RESPONSE_IN.get(a.response_type or "", Response.NEEDS_ACTION),
                )
    return participants_in(attendees, extra)


def _owner(item: CalendarItem | Task, ctx: MappingContext, extra: dict[str, Any]) -> str:
    carried = text(extra.get("owner"))
    if carried:
        return carried
    organizer = getattr(item, "organizer", None)
    if organizer is not None and organizer.email_address:
        return str(organizer.email_address)
    return ctx.owner.email


def _priority_in(importance: str | None, options: MappingOptions, extra: dict[str, Any], carried: bool) -> str | None:
    carried_prio = text(extra.get("priority"))

    def forward(value: str | None) -> str:
        return importance_from_priority(options.priority.get(value) if value else None)

    if carried and forward(carried_prio) == importance:
        return carried_prio
    if not carried and importance in (None, "Normal"):
        return None  # Normal is EWS's "not set"
    return priority_value(options, carried_prio, priority_from_importance(importance))


# --- small helpers -----------------------------------------------------------------------------------


def _ref(item: Any) -> str:
    ident = getattr(item, "id", None) or getattr(item, "uid", None) or getattr(item, "syncd_crm_id", None)
    return str(ident or "<new item>")


def _zone_key(tz: EWSTimeZone | str | None) -> str | None:
    if tz is None:
        return None
    return tz if isinstance(tz, str) else tz.key


def _ews_zone(name: str, item: str) -> EWSTimeZone:
    try:
        return EWSTimeZone(name)
    except UnknownTimeZone:
        # Times stay exact (aware instants); only the zone Outlook shows differs. The name rides in the blob.
        log.warning("ews.timezone.unmapped", item=item, timezone=name)
        return EWSTimeZone("UTC")


def _ews_zone_quiet(name: str) -> EWSTimeZone:
    try:
        return EWSTimeZone(name)
    except UnknownTimeZone:
        return EWSTimeZone("UTC")


def _zone_ms_id(name: str) -> str | None:
    try:
        return EWSTimeZone(name).ms_id
    except UnknownTimeZone:
        return "UTC"


def _aware(value: Moment, item: str, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ItemError(item, field, "a timed activity needs timezone-aware datetimes")
    return value


def _ews_datetime(value: datetime, tz: EWSTimeZone) -> EWSDateTime:
    # Whole seconds: Exchange keeps no fractions, and exchangelib cannot read back a time written with them.
    local = value.astimezone(ZoneInfo(tz.key))
    if _odd_offset(local) or second_pass(local):
        # Local mean time before a zone's first standard (Amsterdam until 1937: +00:19:32) is no
        # xs:dateTime offset; the same instant in UTC is. The item's zone is sent beside it. So is the
        # second pass of a repeated hour, which exchangelib compares with the start on the wall clock.
        local = value.astimezone(UTC)
        tz = _UTC
    if tz.key == "UTC":
        tz = _UTC  # exchangelib writes UTC with strftime, which drops the leading zeros of years before 1000
    return EWSDateTime(local.year, local.month, local.day, local.hour, local.minute, local.second, tzinfo=tz)


_UTC = EWSTimeZone("Etc/GMT")
"""UTC as exchangelib writes it with a ``+00:00`` offset (Exchange's id for it is "UTC" all the same)."""


def _odd_offset(value: datetime) -> bool:
    """Whether ``value``'s UTC offset has seconds, which xs:dateTime cannot write."""
    offset = value.utcoffset()
    return offset is not None and offset % timedelta(minutes=1) != timedelta()


def _all_day_bound(day: date, tz: EWSTimeZone) -> EWSDate | EWSDateTime:
    """An all-day start (or exclusive end) as exchangelib sends it: the date, which it writes as midnight
    in the zone. Where that midnight's offset has seconds (local mean time, before 1937 in Amsterdam),
    midnight at the offset cut to whole hours, in UTC: Exchange's Windows zones and exchangelib know no
    local mean time and give such years whole-hour offsets, and the day is then the same for them and
    for the IANA zone."""
    midnight = datetime.combine(day, time(), tzinfo=ZoneInfo(tz.key))
    if not _odd_offset(midnight):
        return EWSDate(day.year, day.month, day.day)
    offset = midnight.utcoffset() or timedelta()
    instant = datetime.combine(day, time(), tzinfo=UTC) - offset // timedelta(hours=1) * timedelta(hours=1)
    return EWSDateTime(instant.year, instant.month, instant.day, instant.hour, instant.minute, tzinfo=_UTC)


def _as_date(value: Moment) -> date:
    return value.date() if isinstance(value, datetime) else value


def _local_date(value: Moment, zone: ZoneInfo) -> date:
    return value.astimezone(zone).date() if isinstance(value, datetime) else value


def _local_ews_date(value: Moment | None, zone: ZoneInfo) -> EWSDate | None:
    if value is None:
        return None
    d = _local_date(value, zone)
    return EWSDate(d.year, d.month, d.day)


def _plain(value: datetime) -> datetime:
    """A stdlib datetime (exchangelib's EWSDateTime insists on its own zone class)."""
    return datetime.combine(value.date(), value.timetz())


def _in_zone(value: Any, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=zone)
    return _plain(value).astimezone(zone)


def _to_date(value: Any, zone: ZoneInfo, end: bool) -> date | None:
    """All-day start/end as domain dates (exclusive end). exchangelib gives dates with an inclusive end
    for all-day items it parsed or built; occurrences come as midnight datetimes."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _plain(value).astimezone(zone).date()
    d = date(value.year, value.month, value.day)
    return d + timedelta(days=1) if end else d


def _all_day_end(shown: date | None, carried: Moment | None, zone: ZoneInfo) -> date | None:
    """The exclusive all-day end, undoing an exchangelib quirk where it can be undone.

    exchangelib reads an all-day end by subtracting 24 hours in UTC, so an event whose last day is a
    23-hour day (spring DST change) reads one day short. Which end was meant cannot be told from the
    date alone; syncd's own items carry it, and the carried end wins while it explains what was read.
    """
    if shown is None or not isinstance(carried, date) or isinstance(carried, datetime):
        return shown
    if carried == shown:
        return carried
    last = carried - timedelta(days=1)
    midnight = datetime.combine(last, time(), tzinfo=zone)
    next_midnight = datetime.combine(carried, time(), tzinfo=zone)
    if carried == shown + timedelta(days=1) and _instant(next_midnight) - _instant(midnight) < timedelta(hours=24):
        return carried
    return shown


def _instant(value: datetime) -> datetime:
    return _plain(value).astimezone(UTC)


def _utc(value: datetime | None) -> datetime | None:
    return _plain(value).astimezone(UTC) if value is not None else None


_TAG = re.compile(r"<[^>]+>")


def _text(body: Any) -> str | None:
    if not body:
        return None
    if isinstance(body, HTMLBody):
        return html.unescape(_TAG.sub("", str(body))).strip() or None
    return str(body)


def _differs(value: str | None, series: str | None) -> str | None:
    return value if value and value != series else None


