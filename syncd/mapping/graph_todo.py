"""Activity (a task) <-> Microsoft To Do ``todoTask`` JSON; pure functions, no I/O.

To Do has no extended properties: the CRM id rides in a ``linkedResource`` (``externalId``, with the
link back to the CRM as ``webUrl`` when ``crm_url`` is set) and, with the kind and the blob of
:mod:`syncd.mapping.graph_props`, in an open extension named :data:`EXTENSION`. To Do keeps dates only
(``dueDateTime`` / ``startDateTime`` are midnights), so exact times, the end and the reminder offset
ride in the blob, as for EWS tasks: a carried value wins while To Do still shows its date.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from syncd.errors import ItemError
from syncd.mapping import graph_props as gp
from syncd.mapping import outlook_data as od
from syncd.mapping.accepted import storable
from syncd.mapping.carried import Uncarried
from syncd.mapping.context import MappingContext
from syncd.mapping.ews_fields import organizer_in, uncarried_keys
from syncd.mapping.graph import rule_in
from syncd.mapping.identity import activity_id_for_uid
from syncd.mapping.options import MappingOptions, importance_from_priority
from syncd.mapping.outlook_recurrence import UnsupportedRecurrence, one_rule, to_outlook
from syncd.model import Activity, Kind, Moment, Recurrence, Sensitivity

__all__ = ["EXTENSION", "LINK_APPLICATION", "task_extension", "task_from_graph", "task_link", "task_patch",
           "task_to_graph"]

#: The open extension on syncd's tasks (extensionName).
EXTENSION = "org.syncd.activity"
LINK_APPLICATION = "syncd"
_STATUS_OUT = {
    "NotStarted": "notStarted", "InProgress": "inProgress", "Completed": "completed",
    "WaitingOnOthers": "waitingOnOthers", "Deferred": "deferred",
}
_STATUS_IN = {v.casefold(): k for k, v in _STATUS_OUT.items()}


def task_to_graph(activity: Activity, ctx: MappingContext) -> dict[str, Any]:
    """The task's own fields (without linked resource and extension, see below)."""
    if activity.is_event:
        raise ItemError(activity.id, "kind", f"a {activity.kind} is not a To Do task")
    if activity.timezone_definition is not None:
        raise ItemError(
            activity.id, "timezone", f"To Do cannot express a calendar's own time zone ({activity.timezone!r})"
        )
    options = ctx.options
    zone_name = gp.zone_of(activity.timezone or ctx.default_timezone)
    zone = zone_name or ZoneInfo("UTC")
    status = _STATUS_OUT[options.status_target(activity.status).ews_task_status]
    anchor = activity.due if activity.due is not None else activity.start
    body: dict[str, Any] = {
        "title": activity.subject[: gp.SUBJECT_MAX],
        "body": {"contentType": "text", "content": activity.description or ""},
        "importance": gp.importance_for(activity, options),
        "status": status,
        "categories": od.categories_out(activity, options, gp.shown_category),
        "dueDateTime": _day(activity.due, zone),
        "startDateTime": _day(activity.start, zone),
        "isReminderOn": activity.reminder_minutes is not None and anchor is not None,
        "recurrence": None,
    }
    if body["isReminderOn"] and anchor is not None and activity.reminder_minutes is not None:
        at = anchor if isinstance(anchor, datetime) else datetime.combine(anchor, time(), tzinfo=zone)
        body["reminderDateTime"] = gp.dtz(at - timedelta(minutes=activity.reminder_minutes), "UTC")
    if status == "completed" and activity.completed_at is not None:
        body["completedDateTime"] = gp.dtz(activity.completed_at, "UTC")
    if activity.recurrence is not None:
        if activity.due is None:
            raise ItemError(activity.id, "RRULE", "a recurring To Do task needs a due date (its series' anchor)")
        try:
            rec = to_outlook(one_rule(activity), activity.due, zone)
        except UnsupportedRecurrence as exc:
            raise UnsupportedRecurrence(activity.id, activity.recurrence.rrule, exc.reason) from None
        body["recurrence"] = gp.recurrence_json(rec, zone.key)
    return body


def task_link(activity: Activity, ctx: MappingContext) -> dict[str, Any]:
    """The linkedResource naming the CRM activity (To Do shows it as a link)."""
    url = ctx.options.crm_url.format(id=activity.id) if ctx.options.crm_url else None
    link = {"applicationName": LINK_APPLICATION, "displayName": activity.subject[:255] or activity.id,
            "externalId": activity.id}
    if url:
        link["webUrl"] = url
    return link


def task_extension(activity: Activity) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.openTypeExtension",
        "extensionName": EXTENSION,
        "crmId": activity.id,
        "kind": str(activity.kind),
        "extra": gp.dump_extra(od.blob(activity, attendees_sent=False)),
    }


def _day(value: Moment | None, zone: ZoneInfo) -> dict[str, str] | None:
    if value is None:
        return None
    day = value.astimezone(zone).date() if isinstance(value, datetime) else value
    return gp.day_dtz(day, zone.key)


def task_patch(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body of the task fields that differ from ``current`` (a task as read)."""
    patch: dict[str, Any] = {}
    for key, want in wanted.items():
        have = current.get(key)
        if key in ("dueDateTime", "startDateTime"):
            zone = gp.zone_of((want or {}).get("timeZone")) or ZoneInfo("UTC")
            same = gp.day_of(have, zone) == gp.day_of(want, zone) if have and want else have == want
        elif key in ("reminderDateTime", "completedDateTime"):
            same = gp.instant(have) == gp.instant(want)
        elif key == "body":
            same = (gp.body_text(have) or "") == (gp.body_text(want) or "")
        elif key == "recurrence":
            try:
                same = _rec(have) == _rec(want)
            except (ValueError, KeyError, TypeError):
                same = False
        elif key in ("importance", "status"):
            same = str(have or "").casefold() == str(want or "").casefold()
        else:
            same = sorted(have or ()) == sorted(want or ()) if key == "categories" else have == want
        if not same:
            patch[key] = want
    return patch


def _rec(value: object) -> object:
    return gp.recurrence_key(gp.recurrence_from_json(value)) if isinstance(value, dict) else None


def extension_of(task: dict[str, Any]) -> dict[str, Any] | None:
    for ext in task.get("extensions") or ():
        named = ext.get("extensionName") if isinstance(ext, dict) else None
        if isinstance(ext, dict) and (named == EXTENSION or str(ext.get("id", "")).endswith(EXTENSION)):
            return ext
    return None


def link_of(task: dict[str, Any]) -> dict[str, Any] | None:
    for link in task.get("linkedResources") or ():
        if isinstance(link, dict) and link.get("applicationName") == LINK_APPLICATION and link.get("externalId"):
            return link
    return None


def task_from_graph(task: dict[str, Any], ctx: MappingContext) -> gp.ParsedGraphItem:
    """Read a task (``$expand=extensions``; ``linkedResources`` when present) as an activity."""
    ref = str(task.get("id") or "<new task>")
    ext = extension_of(task) or {}
    link = link_of(task) or {}
    raw_extra = od.load_extra(ext.get("extra"))
    carried = raw_extra is not None
    extra = raw_extra or {}
    crm_id = od.text(ext.get("crmId")) or od.text(link.get("externalId"))
    categories = tuple(c for c in task.get("categories") or () if isinstance(c, str))
    options = ctx.options
    try:
        fields = _task_in(task, ctx, extra, carried)
    except (ValueError, TypeError, KeyError) as exc:
        raise ItemError(ref, None, f"unreadable: {exc}") from exc
    owner = od.text(extra.get("owner")) or ctx.owner.email
    activity = Activity(
        id=crm_id or activity_id_for_uid(f"todo:{ref}"),
        subject=od.text(task.get("title")) or "",
        owner=owner,
        description=gp.body_text(task.get("body")),
        sensitivity=od.enum(Sensitivity, extra.get("sensitivity")) if carried else None,
        type=od.type_in(categories, options, extra, carried, gp.shown_category),
        priority=gp.priority_in(task.get("importance"), options, extra, carried),
        **od.hidden_in(categories, options, extra, carried),
        updated_at=gp.utc(task.get("lastModifiedDateTime")),
        created_at=gp.utc(task.get("createdDateTime")),
        **fields,
    )
    activity = activity.replace(
        categories=od.own_categories(categories, activity, options, raw_extra, gp.shown_category),
        organizer=organizer_in(extra, carried, None, ctx.directory.users, ctx.directory.classify, ctx.owner.email),
    )
    activity = storable(activity, ref)
    return gp.ParsedGraphItem(None, crm_id, activity, gp.utc(task.get("lastModifiedDateTime")), categories,
                              _uncarried(task, activity, options, raw_extra))


def _uncarried(task: dict[str, Any], activity: Activity, options: MappingOptions,
               blob: dict[str, Any] | None) -> Uncarried:
    """What of syncd's data this task lacks (see :func:`syncd.mapping.graph._uncarried`); To Do shows
    no sensitivity, show-as, location or end, so without the blob the CRM's stand."""
    missing = uncarried_keys(blob, False)
    if blob is not None:
        return Uncarried(fields=frozenset(missing))
    missing |= {"place", "project", "close_reason", "regarding", "parent_id", "end", "sensitivity", "participants"}
    shown: dict[str, Any] = {}
    folded = {c.casefold() for c in task.get("categories") or ()}
    if options.direction_categories:
        shown["direction"] = lambda crm: activity.direction == crm.direction
    else:
        missing.add("direction")
    task_status = _STATUS_IN.get(str(task.get("status") or "notStarted").casefold(), "NotStarted")
    shown["status"] = lambda crm: options.status_target(crm.status).ews_task_status == task_status
    importance = str(task.get("importance") or "normal").capitalize()
    shown["priority"] = lambda crm: importance_from_priority(
        options.priority.get(crm.priority) if crm.priority else None) == importance
    shown["type"] = lambda crm: activity.type is None if crm.type is None else (
        gp.type_category(crm.type, options).casefold() in folded)
    return Uncarried(fields=frozenset(missing), shown=shown, type_category=lambda v: gp.type_category(v, options))


def _task_in(task: dict[str, Any], ctx: MappingContext, extra: dict[str, Any], carried: bool) -> dict[str, Any]:
    options = ctx.options
    zone = gp.zone_of(od.text(extra.get("tz")) or ctx.default_timezone) or ZoneInfo("UTC")
    all_day = bool(extra.get("all_day")) if carried else True
    shown_status = _STATUS_IN.get(str(task.get("status") or "notStarted").casefold(), "NotStarted")
    status = od.carried_or_shown(
        carried, od.text(extra.get("status")), shown_status,
        lambda v: options.status_target(v).ews_task_status, options.status_inbound.ews_task_status,
    )
    due = _date_in(task.get("dueDateTime"), extra.get("due") if carried else None, zone, timed=not all_day)
    start = _date_in(task.get("startDateTime"), extra.get("start") if carried else None, zone, timed=not all_day)
    end = od.moment_from_json(extra.get("end")) if carried else None
    if end is not None and start is not None and (
        isinstance(end, datetime) != isinstance(start, datetime) or end < start
    ):
        end = None
    unchanged = carried and options.status_target(od.text(extra.get("status"))).ews_task_status == shown_status
    completed_at: Moment | None
    if unchanged:
        completed_at = od.moment_from_json(extra.get("completed_at"))
    elif shown_status == "Completed":
        completed_at = gp.instant(task.get("completedDateTime")) or datetime.now(UTC).replace(microsecond=0)
    else:
        completed_at = None
    reminder = None
    if task.get("isReminderOn"):
        carried_minutes = extra.get("reminder") if carried else None
        anchor = due if due is not None else start
        at = gp.instant(task.get("reminderDateTime"))
        if isinstance(carried_minutes, int):
            reminder = carried_minutes
        elif at is not None and anchor is not None:
            base = anchor if isinstance(anchor, datetime) else datetime.combine(anchor, time(), tzinfo=zone)
            reminder = round((base - at).total_seconds() / 60)  # negative: after the due moment
    recurrence = None
    if task.get("recurrence"):
        if due is None:
            raise ItemError(str(task.get("id")), "recurrence", "a recurring task without a due date")
        recurrence = Recurrence(rrule=rule_in(task["recurrence"], due, zone, extra, str(task.get("id"))))
    return {
        "kind": Kind.TASK,
        "start": start,
        "end": end,
        "due": due,
        "all_day": all_day,
        "timezone": od.text(extra.get("tz")) if carried else None,
        "status": status,
        "completed_at": completed_at if isinstance(completed_at, datetime) else None,
        "reminder_minutes": reminder,
        "location": od.text(extra.get("location")) if carried else None,
        "recurrence": recurrence,
        "participants": od.participants_in({}, extra),
    }


def _date_in(shown_value: object, carried_json: object, zone: ZoneInfo, timed: bool) -> Moment | None:
    """The CRM's value while To Do still shows its date; else the shown date (at the CRM's time of
    day for a timed task)."""
    if not isinstance(shown_value, dict):
        return None
    own = gp.zone_of(shown_value.get("timeZone"))
    # A UTC midnight is To Do's floating date or the instant of a midnight in the task's zone; read in
    # the task's zone, the nearest midnight is the day meant either way.
    shown = gp.day_of(shown_value, zone if own is None or own.key in ("UTC", "Etc/UTC") else own)
    if shown is None:
        return None
    carried = od.moment_from_json(carried_json)
    local = carried.astimezone(zone).date() if isinstance(carried, datetime) else carried
    if carried is not None and local == shown and isinstance(carried, datetime) == timed:
        return carried
    if not timed:
        return shown
    clock = carried.astimezone(zone).time() if isinstance(carried, datetime) else time()
    return datetime.combine(shown, clock, tzinfo=zone)

