"""Activity <-> Microsoft Graph ``event`` JSON; pure functions, no I/O.

Outbound: :func:`event_to_graph` builds the JSON of a new event; :func:`event_patch` the PATCH body of
what differs from the event as read. Inbound: :func:`event_from_graph` (the master read with its
``exceptionOccurrences`` and ``cancelledOccurrences``, syncd's extended properties expanded).

What goes where mirrors :mod:`syncd.mapping.ews` (the same extended properties and blob, so an item made
through EWS reads the same through Graph): appointment and call -> event (a call carries
``options.call_category``); status -> ``showAs`` (``isCancelled`` is read-only, read only); priority
-> ``importance``; type, call and direction -> categories; reminder -> ``isReminderOn`` /
``reminderMinutesBeforeStart``; recurrence -> ``patternedRecurrence`` through
:mod:`syncd.mapping.outlook_recurrence` (Graph has a yearly interval of its own). An exception's own
reminder, ``sensitivity`` and ``showAs`` are its override's (written by PATCH of that instance: see
:func:`occurrence_patch`). An occurrence's status is read and written as through EWS
(:func:`syncd.mapping.outlook_data.occurrence_look`): a cancelled one shows free with its subject
unchanged, its exact status in the blob; an exception Outlook marks ``isCancelled`` (an attendee's copy
of one its organizer cancelled) reads cancelled. An occurrence the organizer cancels is removed from
the organizer's calendar and listed in ``cancelledOccurrences``, as a deleted one is: an EXDATE.

Participants: Graph cannot save an event with attendees without mailing them, so unless the binding
sends invitations no ``attendees`` are written and every participant travels in full in the blob
(and comes back unchanged). Attendees a user added in Outlook are read either way.

Times are read as Graph gives them with ``Prefer: outlook.timezone="UTC"``; the event's zone is
``originalStartTimeZone`` (Windows or IANA name). Timed events are written in the activity's zone
(IANA names, which Graph accepts), all-day events as midnights in the activity's (else the owner's) zone.
A time in the second pass of a repeated hour (a clock set back), which a wall time cannot name, is
written in UTC and the event keeps the zone syncd's data carries; a series starting there is refused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from syncd.errors import ItemError
from syncd.mapping import graph_props as gp
from syncd.mapping import outlook_data as od
from syncd.mapping.accepted import storable
from syncd.mapping.carried import Uncarried
from syncd.mapping.context import MappingContext
from syncd.mapping.ews_fields import (
    FREE_BUSY,
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
from syncd.mapping.ical_time import second_pass
from syncd.mapping.identity import activity_id_for_uid, activity_id_from_uid
from syncd.mapping.options import MappingOptions, importance_from_priority
from syncd.mapping.outlook_recurrence import (
    OccurrenceChange,
    UnsupportedRecurrence,
    from_outlook,
    one_rule,
    to_outlook,
)
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

__all__ = ["event_from_graph", "event_patch", "event_to_graph"]

log = structlog.get_logger(__name__)

_SHOW_AS = {
    "Free": "free", "Tentative": "tentative", "Busy": "busy", "OOF": "oof",
    "WorkingElsewhere": "workingElsewhere", "NoData": "unknown",
}
_SHOWN_AS = {v.casefold(): k for k, v in _SHOW_AS.items()}
_RESPONSE_IN = {
    "accepted": Response.ACCEPTED, "organizer": Response.ACCEPTED,
    "declined": Response.DECLINED, "tentativelyaccepted": Response.TENTATIVE,
}
_TIMES = ("start", "end", "isAllDay")


# --- outbound ----------------------------------------------------------------------------------------


def event_to_graph(activity: Activity, ctx: MappingContext, *, invitations: bool) -> dict[str, Any]:
    """The event JSON for ``activity`` (no ``transactionId``: the connector adds it to a create)."""
    if not activity.is_event:
        raise ItemError(activity.id, "kind", f"a {activity.kind} is not a Graph event")
    if activity.start is None:
        raise ItemError(activity.id, "start", "an appointment or call needs a start")
    refuse_late_reminders(activity)
    if activity.timezone_definition is not None:
        raise ItemError(
            activity.id, "timezone",
            f"Exchange cannot express a calendar's own time zone ({activity.timezone!r}, which no IANA zone "
            "follows); the item is left alone rather than moved to another zone's days and hours",
        )
    options = ctx.options
    body: dict[str, Any] = {
        "subject": _subject(activity),
        "body": {"contentType": "text", "content": activity.description or ""},
        "categories": od.categories_out(activity, options, gp.shown_category),
        "importance": gp.importance_for(activity, options),
        "sensitivity": sensitivity_out(activity.sensitivity).lower(),
        "showAs": _SHOW_AS[free_busy_out(activity.show_as, options.status_target(activity.status).ews_free_busy)],
        "location": {"displayName": activity.location or ""},
        "isReminderOn": activity.reminder_minutes is not None,
    }
    if activity.reminder_minutes is not None:
        body["reminderMinutesBeforeStart"] = activity.reminder_minutes
    zone_name = _times(activity, ctx, body)
    body["recurrence"] = None
    if activity.recurrence is not None:
        if body["start"]["timeZone"] != zone_name:
            # gp.dtz: the start lies in a repeated hour's second pass. Outlook runs a series on its start's
            # clock: in UTC it would move an hour at the next change, in the zone start an hour early.
            raise ItemError(activity.id, "start", "Outlook cannot start a series in the second pass of an hour "
                            f"the clock repeats ({activity.start.isoformat()} in {zone_name}); the item is left alone")
        try:
            rec = to_outlook(one_rule(activity), activity.start, ZoneInfo(zone_name))
        except UnsupportedRecurrence as exc:
            log.warning("graph.recurrence.unsupported", item=activity.id, rule=exc.rule, reason=exc.reason)
            raise UnsupportedRecurrence(activity.id, activity.recurrence.rrule, exc.reason) from None
        body["recurrence"] = gp.recurrence_json(rec, zone_name)
    if invitations:
        # A room or equipment is a resource attendee: Exchange books it (its own response comes back).
        body["attendees"] = [
            {"emailAddress": {"address": p.email, "name": p.name or p.email},
             "type": "resource" if p.kind is ParticipantKind.RESOURCE else str(p.role)}
            for p in activity.participants
            if od.is_attendee(p)
        ]
    props = {
        gp.CRM_ID: activity.id,
        gp.KIND: str(activity.kind),
        gp.EXTRA: gp.dump_extra(od.blob(activity, attendees_sent=invitations)),
    }
    if options.crm_url:
        props[gp.URL] = options.crm_url.format(id=activity.id)
    body["singleValueExtendedProperties"] = [{"id": k, "value": v} for k, v in props.items()]
    return body


def occurrence_patch(change: OccurrenceChange, options: MappingOptions) -> dict[str, Any]:
    """An occurrence's status, reminder, sensitivity and show-as for its PATCH, those the change sets.
    Its status shows as the status table's free/busy (``isCancelled`` is Exchange's own, set when an
    organizer cancels: a cancelled occurrence shows free, its exact status rides in the master's blob);
    a show-as of its own wins."""
    fields: dict[str, Any] = {}
    if change.status is not None or change.series_look:
        # An undone show-as of its own: what the series shows, also when it has neither show-as nor status.
        fields["showAs"] = _SHOW_AS[options.status_target(change.status).ews_free_busy]
    if change.sensitivity is not None:
        fields["sensitivity"] = sensitivity_out(change.sensitivity).lower()
    if change.reminder is not None:
        (minutes,) = change.reminder
        fields["isReminderOn"] = minutes is not None
        if minutes is not None:
            fields["reminderMinutesBeforeStart"] = minutes
    if change.show_as is not None:
        fields["showAs"] = _SHOW_AS[FREE_BUSY[change.show_as]]
    return fields


def _subject(activity: Activity) -> str:
    if len(activity.subject) > gp.SUBJECT_MAX:
        log.warning("graph.subject.truncated", item=activity.id, length=len(activity.subject))
    return activity.subject[: gp.SUBJECT_MAX]


def _times(activity: Activity, ctx: MappingContext, body: dict[str, Any]) -> str:
    """Set start, end and isAllDay; returns the zone the event is written in."""
    assert activity.start is not None
    if activity.all_day:
        zone_name = _known_zone(activity.timezone or ctx.default_timezone, activity.id)
        first = _as_date(activity.start)
        end = activity.effective_end
        last = _as_date(end) if end is not None else first + timedelta(days=1)
        last = max(last, first + timedelta(days=1))
        body.update(start=gp.day_dtz(first, zone_name), end=gp.day_dtz(last, zone_name), isAllDay=True)
        return zone_name
    zone_name = _known_zone(activity.timezone or "UTC", activity.id)
    start = _aware(activity.start, activity.id, "start")
    end = _aware(activity.end, activity.id, "end") if activity.end is not None else start
    body.update(start=gp.dtz(start, zone_name), end=gp.dtz(end, zone_name), isAllDay=False)
    return zone_name


def _known_zone(name: str, item: str) -> str:
    if gp.zone_of(name) is None:
        # Times stay exact (aware instants); only the zone Outlook shows differs. The name rides in the blob.
        log.warning("graph.timezone.unmapped", item=item, timezone=name)
        return "UTC"
    return name


def event_patch(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body that makes ``current`` (an event as read) show ``wanted``: only what differs,
    so an unchanged recurrence is never rewritten (that would drop the series' exceptions)."""
    patch = {k: v for k, v in wanted.items() if k != "singleValueExtendedProperties" and not _same(k, current, wanted)}
    if patch.keys() & set(_TIMES):
        patch.update({k: wanted[k] for k in _TIMES})
    if current.get("type") in ("occurrence", "exception"):
        patch.pop("recurrence", None)
    have = gp.properties(current)
    props = [p for p in wanted.get("singleValueExtendedProperties", ()) if have.get(p["id"]) != p["value"]]
    if props:
        patch["singleValueExtendedProperties"] = props
    return patch


def _same(key: str, current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    have, want = current.get(key), wanted.get(key)
    if key in ("start", "end"):
        zone_key = "originalStartTimeZone" if key == "start" else "originalEndTimeZone"
        if not _same_zone(current.get(zone_key), want.get("timeZone") if isinstance(want, dict) else None, have):
            return False
        if wanted.get("isAllDay") and isinstance(want, dict):
            zone = gp.zone_of(want.get("timeZone")) or ZoneInfo("UTC")
            return gp.day_of(have, zone) == gp.day_of(want, zone)
        return gp.instant(have) == gp.instant(want)
    if key == "body":
        return (gp.body_text(have) or "") == (gp.body_text(want) or "")
    if key == "location":
        return _location(have) == _location(want)
    if key == "recurrence":
        try:
            return _rec_key(have) == _rec_key(want)
        except (ValueError, KeyError, TypeError):
            return False
    if key == "attendees":
        return _attendee_key(have) == _attendee_key(want)
    if key == "categories":
        # Outlook keeps its own order; a user added or removed one, or syncd's changed, is a change.
        return sorted(have or ()) == sorted(want or ())
    if key in {"importance", "showAs", "sensitivity"}:
        return str(have or "").casefold() == str(want or "").casefold()
    return bool(have == want)


def _same_zone(shown: object, wanted: object, value: object) -> bool:
    a, b = gp.zone_of(shown), gp.zone_of(wanted)
    if a is None or b is None:
        return a == b or shown is None
    if a.key == b.key:
        return True
    # Outlook may keep the Windows name for the IANA name syncd wrote: the same zone if it keeps
    # the same offsets (compared at the value and half a year away).
    at = gp.instant(value) or datetime.now(UTC)
    return all(a.utcoffset(t) == b.utcoffset(t) for t in (at, at + timedelta(days=182)))


def _rec_key(value: object) -> object:
    return gp.recurrence_key(gp.recurrence_from_json(value)) if isinstance(value, dict) else None


def _location(value: object) -> str:
    return str(value.get("displayName") or "") if isinstance(value, dict) else ""


def _attendee_key(value: object) -> list[tuple[str, str]]:
    out = []
    for a in value if isinstance(value, list) else ():
        address = ((a.get("emailAddress") or {}).get("address") or "").casefold()
        out.append((address, str(a.get("type") or "required")))
    return out


# --- inbound -----------------------------------------------------------------------------------------


def event_from_graph(event: dict[str, Any], ctx: MappingContext) -> gp.ParsedGraphItem:
    """Read an event (a single instance or a series master) as an activity; :class:`ItemError` when
    it cannot be read (e.g. a pattern syncd cannot express)."""
    ref = str(event.get("id") or "<new event>")
    props = gp.properties(event)
    raw_extra = od.load_extra(props.get(gp.EXTRA))
    carried = raw_extra is not None
    extra = raw_extra or {}
    uid = od.text(event.get("iCalUId"))
    crm_id = props.get(gp.CRM_ID) or activity_id_from_uid(uid)
    categories = tuple(c for c in event.get("categories") or () if isinstance(c, str))
    options = ctx.options
    try:
        fields = _event_in(event, ctx, extra, carried, ref)
    except (ValueError, TypeError, KeyError) as exc:
        raise ItemError(ref, None, f"unreadable: {exc}") from exc
    activity = Activity(
        id=crm_id or activity_id_for_uid(uid or ref),
        subject=od.text(event.get("subject")) or "",
        owner=_owner(event, ctx, extra),
        description=gp.body_text(event.get("body")),
        sensitivity=sensitivity_in(str(event.get("sensitivity") or "normal").capitalize(), extra, carried),
        type=od.type_in(categories, options, extra, carried, gp.shown_category),
        priority=gp.priority_in(event.get("importance"), options, extra, carried),
        **od.hidden_in(categories, options, extra, carried),
        updated_at=gp.utc(event.get("lastModifiedDateTime")),
        created_at=gp.utc(event.get("createdDateTime")),
        **fields,
    )
    who = (event.get("organizer") or {}).get("emailAddress") or {}
    organizer = SimpleNamespace(email_address=who.get("address"), name=who.get("name"))
    activity = activity.replace(
        categories=od.own_categories(categories, activity, options, raw_extra, gp.shown_category),
        organizer=organizer_in(extra, carried, organizer, ctx.directory.users, ctx.directory.classify, ctx.owner.email),
    )
    activity = storable(activity, ref)
    return gp.ParsedGraphItem(uid, crm_id, activity, gp.utc(event.get("lastModifiedDateTime")), categories,
                              _uncarried(event, activity, options, raw_extra))


def _uncarried(event: dict[str, Any], activity: Activity, options: MappingOptions,
               blob: dict[str, Any] | None) -> Uncarried:
    """What of syncd's data this event lacks: no blob at all (a client or a copy that dropped it), or
    one from a syncd that knew fewer fields (as :func:`syncd.mapping.ews._uncarried`)."""
    missing = uncarried_keys(blob, True)
    if blob is not None:
        return Uncarried(fields=frozenset(missing))
    missing |= {"place", "project", "close_reason", "regarding", "parent_id"}
    shown: dict[str, Any] = {}
    folded = {c.casefold() for c in event.get("categories") or ()}
    if options.direction_categories:
        shown["direction"] = lambda crm: activity.direction == crm.direction
    else:
        missing.add("direction")
    free_busy = _SHOWN_AS.get(str(event.get("showAs") or "busy").casefold(), "Busy")
    cancelled = bool(event.get("isCancelled"))

    def shows(crm: Activity) -> bool:
        # What syncd would write for the CRM's version: its show-as, else its status's free/busy.
        by_status = options.status_target(crm.status).ews_free_busy
        return not cancelled and free_busy_out(crm.show_as, by_status) == free_busy

    shown["status"] = shown["show_as"] = shows
    importance = str(event.get("importance") or "normal").capitalize()
    shown["priority"] = lambda crm: importance_from_priority(
        options.priority.get(crm.priority) if crm.priority else None) == importance
    shown["type"] = lambda crm: activity.type is None if crm.type is None else (
        gp.type_category(crm.type, options).casefold() in folded)
    kinds = frozenset(p.key for p in activity.participants if p.email)
    return Uncarried(
        fields=frozenset(missing), shown=shown, type_category=lambda v: gp.type_category(v, options), kinds=kinds,
        hidden_people=lambda p: not od.is_attendee(p),
    )


def _event_in(event: dict[str, Any], ctx: MappingContext, extra: dict[str, Any], carried: bool, ref: str) -> dict:
    options = ctx.options
    shown_name = event.get("originalStartTimeZone")
    shown_zone = gp.zone_of(shown_name)
    carried_tz = od.text(extra.get("tz"))
    zone_name: str | None
    if carried and (_same_zone(shown_name, carried_tz or "UTC", event.get("start"))
                    or _sent_in_utc(shown_zone, carried_tz, event.get("start"))):
        zone_name = carried_tz
    else:
        zone_name = None if shown_zone is None or shown_zone.key in ("UTC", "Etc/UTC") else shown_zone.key
    zone = ZoneInfo(zone_name or "UTC")
    all_day = bool(event.get("isAllDay"))
    start: Moment | None
    end: Moment | None
    if all_day:
        day_zone = shown_zone or zone
        start, end = gp.day_of(event.get("start"), day_zone), gp.day_of(event.get("end"), day_zone)
        zone_name = carried_tz if carried else None
    else:
        start_at, end_at = gp.instant(event.get("start")), gp.instant(event.get("end"))
        start = start_at.astimezone(zone) if start_at else None
        end = end_at.astimezone(zone) if end_at else None
    if start is None:
        raise ValueError("the event has no start")
    carried_status = od.text(extra.get("status"))
    carried_show_as = od.enum(ShowAs, extra.get("show_as")) if carried else None
    shown = _SHOWN_AS.get(str(event.get("showAs") or "busy").casefold(), "Busy")
    if event.get("isCancelled"):
        keep = carried and options.status_target(carried_status).ews_cancelled
        status = carried_status if keep else options.status_inbound.ews_cancelled
    else:
        status = od.carried_or_shown(
            carried, carried_status, shown,
            # A show-as the CRM set decides what Outlook shows, whatever the status.
            lambda v: free_busy_out(carried_show_as, options.status_target(v).ews_free_busy),
            options.status_inbound.ews_free_busy,
        )
    show_as = show_as_in(shown, extra, carried, options.status_target(carried_status).ews_free_busy,
                         options.status_target(status).ews_free_busy)
    is_call = options.call_category.casefold() in {c.casefold() for c in event.get("categories") or ()}
    recurrence = None
    if event.get("recurrence") and event.get("type") == "seriesMaster":
        rec_zone = shown_zone or zone
        recurrence = _recurrence_in(event, start, end, rec_zone, extra, all_day, ref, options)
    return {
        "kind": Kind.CALL if is_call else Kind.APPOINTMENT,
        "start": start,
        "end": end,
        "all_day": all_day,
        "timezone": zone_name,
        "status": status,
        "show_as": show_as,
        "location": _location(event.get("location")) or None,
        "reminder_minutes": _reminder(event),
        "recurrence": recurrence,
        "participants": od.participants_in(_attendees(event, ctx), extra),
    }


def _sent_in_utc(shown: ZoneInfo | None, carried: str | None, start: object) -> bool:
    """Whether the event's start is in UTC because syncd sent it so: it lies in the second pass of a
    repeated hour in the zone syncd's data carries (see ``gp.dtz``), which stays the activity's zone."""
    zone, at = gp.zone_of(carried), gp.instant(start)
    if shown is None or shown.key not in ("UTC", "Etc/UTC") or zone is None or at is None:
        return False
    return second_pass(at.astimezone(zone))


def _recurrence_in(
    event: dict[str, Any], start: Moment, end: Moment | None, zone: ZoneInfo, extra: dict[str, Any],
    all_day: bool, ref: str, options: MappingOptions,
) -> Recurrence:
    rule = rule_in(event["recurrence"], start, zone, extra, ref)
    statuses, shows = od.by_instant(extra.get("occurrence_status")), od.by_instant(extra.get(K_OCCURRENCE_SHOW_AS))
    wall = start.astimezone(zone).timetz().replace(tzinfo=None) if isinstance(start, datetime) else None

    def moment(day: date) -> Moment:
        return day if wall is None else datetime.combine(day, wall, tzinfo=zone)

    exdates = tuple(moment(d) for d in _cancelled_days(event.get("cancelledOccurrences")))
    duration = (end - start) if end is not None else timedelta(0)
    master_text = gp.body_text(event.get("body"))
    series_reminder = _reminder(event)
    overrides: list[Override] = []
    for occ in event.get("exceptionOccurrences") or ():
        original_at = gp.instant(occ.get("originalStart"))
        if original_at is None:
            continue
        original: Moment = original_at.astimezone(zone)
        if all_day:
            original = gp.day_of(occ.get("originalStart"), zone) or original_at.date()
        if all_day:
            new_start: Moment | None = gp.day_of(occ.get("start"), zone)
            new_end: Moment | None = gp.day_of(occ.get("end"), zone)
        else:
            s, e = gp.instant(occ.get("start")), gp.instant(occ.get("end"))
            new_start = s.astimezone(zone) if s else None
            new_end = e.astimezone(zone) if e else None
        key = od.instant_key(original)
        own = Override(
            recurrence_id=original,
            start=new_start if new_start != original else None,
            end=new_end if new_end != original + duration else None,
            subject=_differs(od.text(occ.get("subject")), od.text(event.get("subject"))),
            description=_differs(gp.body_text(occ.get("body")), master_text),
            location=_differs(_location(occ.get("location")), _location(event.get("location"))),
            **_occurrence_own(occ, event, series_reminder),
            **_occurrence_look(occ, event, od.text(statuses.get(key)), od.enum(ShowAs, shows.get(key)), options),
        )
        # An exception that shows nothing of its own (one given back to the series) is no override.
        if own != Override(original):
            overrides.append(own)
    overrides.sort(key=lambda o: _sort_key(o.recurrence_id))
    return Recurrence(rrule=rule, exdates=tuple(sorted(exdates, key=_sort_key)), overrides=tuple(overrides))


def _reminder(event: dict[str, Any]) -> int | None:
    minutes = event.get("reminderMinutesBeforeStart") if event.get("isReminderOn") else None
    return minutes if isinstance(minutes, int) else None


def _occurrence_own(occ: dict[str, Any], event: dict[str, Any], series_reminder: int | None) -> dict[str, Any]:
    """An exception's own reminder and sensitivity: each ``None`` while it is the series' (or the
    exception does not say)."""
    reminder, off = occurrence_reminder_in(_reminder(occ), series_reminder) if "isReminderOn" in occ else (None, False)
    own, series = (str(e.get("sensitivity") or "normal").capitalize() for e in (occ, event))
    sensitivity = occurrence_sensitivity_in(own, series) if "sensitivity" in occ else None
    return {"reminder_minutes": reminder, "reminder_off": off, "sensitivity": sensitivity}


def _occurrence_look(occ: dict[str, Any], event: dict[str, Any], carried: str | None, carried_show: ShowAs | None,
                     options: MappingOptions) -> dict[str, Any]:
    """An exception's status and own show-as, as EWS reads them (:func:`~syncd.mapping.outlook_data.occurrence_look`):
    its ``isCancelled`` (an organizer cancelled it) and ``showAs`` against the carried ones; the carried
    ones while the exception does not say."""
    cancelled = occ.get("isCancelled") is True
    if not cancelled and "showAs" not in occ:
        return {"status": carried, "show_as": carried_show}
    shown, series_shown = (_SHOWN_AS.get(str(e.get("showAs") or "busy").casefold(), "Busy") for e in (occ, event))
    status, show_as = od.occurrence_look(cancelled, shown, carried, carried_show, series_shown, options)
    return {"status": status, "show_as": show_as}


def rule_in(value: dict[str, Any], start: Moment, zone: ZoneInfo, extra: dict[str, Any], ref: str) -> str:
    """The RRULE of a patternedRecurrence; the CRM's own spelling (carried) while it means the same."""
    try:
        read = gp.recurrence_from_json(value)
        rule = from_outlook(read, start, zone)
    except (UnsupportedRecurrence, ValueError) as exc:
        reason = exc.reason if isinstance(exc, UnsupportedRecurrence) else str(exc)
        log.warning("graph.recurrence.unsupported", item=ref, pattern=str(value.get("pattern")), reason=reason)
        raise UnsupportedRecurrence(ref, str(value.get("pattern")), reason) from None
    carried_rule = od.text(extra.get("rrule"))
    if carried_rule and carried_rule != rule:
        try:
            again = to_outlook(carried_rule, start, zone)
        except UnsupportedRecurrence:
            return rule
        if gp.recurrence_key(again) == gp.recurrence_key(read):
            return carried_rule
    return rule


def _cancelled_days(value: object) -> list[date]:
    """``OID.{masterId}.{yyyy-mm-dd}`` -> the dates of the cancelled occurrences."""
    days = []
    for entry in value if isinstance(value, list) else ():
        try:
            days.append(date.fromisoformat(str(entry).rsplit(".", 1)[1][:10]))
        except (IndexError, ValueError):
            continue
    return days


def _sort_key(value: Moment) -> datetime:
    return value.astimezone(UTC) if isinstance(value, datetime) else datetime.combine(value, datetime.min.time(), UTC)


def _attendees(event: dict[str, Any], ctx: MappingContext) -> dict[str, Participant]:
    found: dict[str, Participant] = {}
    for a in event.get("attendees") or ():
        address = od.text((a.get("emailAddress") or {}).get("address"))
        if not address or address.casefold() in found:
            continue
        name = od.text((a.get("emailAddress") or {}).get("name"))
        response = str((a.get("status") or {}).get("response") or "").casefold()
        resource = a.get("type") == "resource"
        found[address.casefold()] = Participant(
            kind=ParticipantKind.RESOURCE if resource else ctx.directory.classify(address),
            email=address,
            name=name if name and name != address else None,
            role=Role.OPTIONAL if a.get("type") == "optional" else Role.REQUIRED,
            response=_RESPONSE_IN.get(response, Response.NEEDS_ACTION),
        )
    return found


def _owner(event: dict[str, Any], ctx: MappingContext, extra: dict[str, Any]) -> str:
    carried = od.text(extra.get("owner"))
    if carried:
        return carried
    address = od.text(((event.get("organizer") or {}).get("emailAddress") or {}).get("address"))
    return address or ctx.owner.email


def _differs(value: str | None, series: str | None) -> str | None:
    return value if value and value != series else None


def _as_date(value: Moment) -> date:
    return value.date() if isinstance(value, datetime) else value


def _aware(value: Moment, item: str, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ItemError(item, field, "a timed activity needs timezone-aware datetimes")
    return value
