"""Calendars and events: create, read, list, update, delete, occurrences and exceptions, open
extensions, invitations."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from . import instances, odata, render, times
from .context import Reply, Request, mailbox
from .errors import bad_request, item_not_found, not_served
from .instances import Instance
from .recurrence import rule
from .routes import CALENDAR, USER, route
from .store import Calendar, Event, Mailbox, SeriesException, new_change_key, new_id, now, prop_key

EVENT = "microsoft.graph.event"
_EVENTS = USER + CALENDAR + "/events"
_ITEM = _EVENTS + r"/(?P<eid>[^/]+)"
# Changing these on a meeting sends an update to its attendees (as Outlook does).
_MEETING_FIELDS = frozenset({"start", "end", "subject", "location", "locations", "recurrence", "body", "isAllDay"})
PAGE = 10


# -- calendars ---------------------------------------------------------------------------------------


def _calendar_json(calendar: Calendar) -> dict[str, Any]:
    return {
        "@odata.id": f"users/{calendar.mailbox.object_id}/calendars/{calendar.id}",
        "id": calendar.id,
        "name": calendar.name,
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": calendar.is_default,
        "changeKey": calendar.change_key,
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True,
        "isRemovable": not calendar.is_default,
        "owner": {"name": calendar.mailbox.display_name, "address": calendar.mailbox.upn},
    }


def calendar_of(box: Mailbox, cal: str | None) -> Calendar:
    if cal is None:
        return box.default_calendar
    found = box.calendars.get(cal)
    if found is None:
        raise item_not_found()
    return found


@route("GET", USER + "/calendars")
def list_calendars(request: Request, user: str) -> Reply:
    box = mailbox(request, user, "calendar")
    return Reply(
        200,
        {
            "@odata.context": request.url(f"/$metadata#users('{user}')/calendars"),
            "value": [_calendar_json(c) for c in box.calendars.values()],
        },
        entity="microsoft.graph.calendar",
        collection=True,
    )


@route("GET", USER + r"(?:/calendar|/calendars/(?P<cal>[^/]+))")
def get_calendar(request: Request, user: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    return Reply(200, _calendar_json(calendar_of(box, cal)), entity="microsoft.graph.calendar")


# -- reading -----------------------------------------------------------------------------------------


def render_instance(request: Request, box: Mailbox, instance: Instance) -> dict[str, Any]:
    return render.event(
        instance,
        box,
        zone=request.zone,
        body_type=odata.body_type(request.prefer),
        select=odata.parse_select(request.query.get("$select"), render.EVENT_PROPERTIES, EVENT),
        expand=odata.parse_expand(request.query.get("$expand"), render.EVENT_EXPANDS),
    )


def _item_reply(request: Request, box: Mailbox, instance: Instance, status: int = 200) -> Reply:
    body = render_instance(request, box, instance)
    body["@odata.context"] = request.url(f"/$metadata#users('{box.upn}')/events/$entity")
    return Reply(status, body, entity=EVENT, partial="$select" in request.query)


def find(box: Mailbox, cal: str | None, eid: str) -> Instance:
    """An event of the mailbox (of calendar `cal` if the path names one) or an occurrence of one."""
    events = {e.id: e for c in box.calendars.values() for e in c.events.values()}
    instance = instances.resolve(events, eid)
    if cal is not None and instance.event.calendar is not calendar_of(box, cal):
        raise item_not_found()
    return instance


@route("GET", _ITEM)
def get_event(request: Request, user: str, eid: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    return _item_reply(request, box, find(box, cal, eid))


def page(request: Request, rows: list[dict[str, Any]], context: str, default: int = PAGE) -> dict[str, Any]:
    """One page of a collection, with @odata.nextLink carrying $skip as the service does."""
    size = odata.page_size(request.prefer, request.query.get("$top"), default)
    try:
        skip = int(request.query.get("$skip", "0"))
    except ValueError as err:
        raise bad_request("Invalid $skip value.", "BadRequest") from err
    out: dict[str, Any] = {"@odata.context": request.url(context), "value": rows[skip: skip + size]}
    if skip + size < len(rows):
        query = {**request.query, "$skip": str(skip + size)}
        out["@odata.nextLink"] = request.url(request.path) + "?" + urlencode(query, quote_via=quote, safe="$'(),:")
    return out


def _extended_value(event: Event, prop_id: str) -> str | None:
    try:
        found = event.extended.get(prop_key(prop_id))
    except ValueError:
        return None
    return found[1] if found else None


@route("GET", _EVENTS)
def list_events(request: Request, user: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    events = sorted(calendar_of(box, cal).events.values(), key=lambda e: e.seq)
    matches = odata.parse_filter(
        request.query.get("$filter"),
        lambda e: {**e.data, "type": "seriesMaster" if e.is_series else "singleInstance", "iCalUId": e.ical_uid,
                   "transactionId": e.transaction_id, "id": e.id},
        _extended_value,
    )
    rows = [render_instance(request, box, instances.master(e)) for e in events if matches is None or matches(e)]
    return Reply(200, page(request, rows, f"/$metadata#users('{user}')/events"), entity=EVENT, collection=True,
                 partial="$select" in request.query)


def window(request: Request) -> tuple[datetime, datetime]:
    start, end = request.query.get("startDateTime"), request.query.get("endDateTime")
    if not start or not end:
        raise bad_request(
            "This request requires a time window specified by the query string parameters StartDateTime and "
            "EndDateTime.",
            "ErrorInvalidParameter",
        )
    return times.parse_instant(start, "startDateTime"), times.parse_instant(end, "endDateTime")


def view(calendar: Calendar, start: datetime, end: datetime) -> list[Instance]:
    found = [i for e in calendar.events.values() for i in instances.in_window(e, start, end)]
    return sorted(found, key=lambda i: (i.start, i.id))


@route("GET", USER + CALENDAR + "/calendarView")
def calendar_view(request: Request, user: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    start, end = window(request)
    rows = [render_instance(request, box, i) for i in view(calendar_of(box, cal), start, end)]
    return Reply(200, page(request, rows, f"/$metadata#users('{user}')/calendarView"), entity=EVENT,
                 collection=True, partial="$select" in request.query)


@route("GET", _ITEM + "/instances")
def list_instances(request: Request, user: str, eid: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    start, end = window(request)
    found = find(box, cal, eid)
    if found.kind != "seriesMaster":
        raise bad_request("The specified item is not a recurring master.", "ErrorInvalidRequest")
    rows = [render_instance(request, box, i) for i in sorted(instances.in_window(found.event, start, end),
                                                               key=lambda i: i.start)]
    return Reply(200, page(request, rows, f"/$metadata#users('{user}')/events('{eid}')/instances"),
                 entity=EVENT, collection=True, partial="$select" in request.query)


@route("GET", _ITEM + "/exceptionOccurrences")
def list_exceptions(request: Request, user: str, eid: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    found = find(box, cal, eid)
    rows = [
        render_instance(request, box, i)
        for i in (instances.occurrence(found.event, s) for s in sorted(found.event.exceptions))
        if i is not None and found.kind == "seriesMaster"
    ]
    return Reply(200, page(request, rows, f"/$metadata#users('{user}')/events('{eid}')/exceptionOccurrences",
                           default=1000),
                 entity=EVENT, collection=True, partial="$select" in request.query)


# -- writing -----------------------------------------------------------------------------------------


def _writable(body: dict[str, Any]) -> dict[str, Any]:
    """The properties a client may set (the service ignores read-only ones, and keeps extended
    properties, extensions and transactionId apart)."""
    skip = render.EVENT_SERVER_SET | {"singleValueExtendedProperties", "multiValueExtendedProperties",
                                      "extensions", "transactionId", "exceptionOccurrences", "instances",
                                      "attachments", "calendar"}
    return {k: copy.deepcopy(v) for k, v in body.items() if k not in skip and "@" not in k}


def _check_times(data: dict[str, Any]) -> None:
    for name in ("start", "end"):
        if not isinstance(data.get(name), dict) or not data[name].get("dateTime"):
            raise bad_request(f"The event must have a valid {name} time.", "ErrorInvalidRequest")
    start, end = times.to_utc(data["start"]), times.to_utc(data["end"])
    if end < start:
        raise bad_request("The end date and time must be later than the start date and time.",
                          "ErrorCalendarEndDateIsEarlierThanStartDate")
    if data.get("isAllDay"):
        for name in ("start", "end"):
            local = times.parse_local(data[name]["dateTime"])
            if local.time() != datetime.min.time():
                raise bad_request(
                    "Start and end times of an all-day event must be at midnight.", "ErrorPropertyValidationFailure"
                )
    if data.get("recurrence"):
        local = times.parse_local(data["start"]["dateTime"])
        rule(data["recurrence"], local.time(), times.zone(data["start"].get("timeZone") or "UTC"))


def _apply_extras(event: Event, body: dict[str, Any]) -> None:
    if body.get("multiValueExtendedProperties"):
        raise not_served("multiValueExtendedProperties")
    for prop in body.get("singleValueExtendedProperties") or []:
        try:
            key = prop_key(prop.get("id") or "")
        except ValueError as err:
            raise bad_request(f"The extended property id '{prop.get('id')}' is not valid.") from err
        if prop.get("value") is None:
            event.extended.pop(key, None)
        else:
            event.extended[key] = (prop["id"], str(prop["value"]))
    for ext in body.get("extensions") or []:
        store_extension(event.extensions, ext)


def store_extension(extensions: dict[str, dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("extensionName")
    if not name:
        raise bad_request("An open extension needs an extensionName.")
    value = {k: v for k, v in body.items() if not k.startswith("@") and k != "id"}
    extensions[name] = value
    return value


def _touch(event: Event, store_seq: int) -> None:
    event.change_key = new_change_key()
    event.modified = now()
    event.seq = store_seq
    # Exceptions show the master's properties: they change with it.
    for exception in event.exceptions.values():
        exception.change_key = new_change_key()


@route("POST", _EVENTS)
def create_event(request: Request, user: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    body = request.json_body(EVENT)
    store = request.graph.store
    transaction = body.get("transactionId")
    if transaction and transaction in box.transactions and box.transactions[transaction].id in store.events:
        return _item_reply(request, box, instances.master(box.transactions[transaction]), 201)
    data = _writable(body)
    _check_times(data)
    calendar = calendar_of(box, cal)
    stamp = now()
    event = Event(
        id=new_id(),
        calendar=calendar,
        data=data,
        change_key=new_change_key(),
        created=stamp,
        modified=stamp,
        seq=store.next_seq(),
        ical_uid="040000008200E00074C5B7101A82E00800000000" + uuid.uuid4().hex,
        transaction_id=transaction,
    )
    _apply_extras(event, body)
    calendar.events[event.id] = event
    store.events[event.id] = event
    if transaction:
        box.transactions[transaction] = event
    store.record_invitation(event, "invitation", data)
    reply = _item_reply(request, box, instances.master(event), 201)
    reply.headers["Location"] = request.url(f"/users('{box.object_id}')/events('{event.id}')")
    return reply


@route("PATCH", _ITEM)
def update_event(request: Request, user: str, eid: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    instance = find(box, cal, eid)
    request.check_if_match(instance.change_key)
    body = request.json_body(EVENT, partial=True)
    changes = _writable(body)
    store = request.graph.store
    event = instance.event
    before = instance.data()
    if instance.kind in ("occurrence", "exception"):
        if "recurrence" in changes:
            raise bad_request("An occurrence of a series cannot have its own recurrence.")
        assert instance.original_start is not None
        exception = event.exceptions.get(instance.original_start) or SeriesException(
            instance.id, {}, new_change_key(), now()
        )
        overrides = {**exception.overrides, **changes}
        _check_times({**event.data, **overrides, "recurrence": None})
        exception.overrides = overrides
        event.exceptions[instance.original_start] = exception
        _touch(event, store.next_seq())  # the exception is stored with the master: both change
        exception.modified = now()
        after = instances.occurrence(event, instance.original_start)
    else:
        data = {**event.data, **changes}
        data = {k: v for k, v in data.items() if v is not None or k in ("recurrence",)}
        _check_times(data)
        if data.get("recurrence") != event.data.get("recurrence"):
            event.exceptions.clear()  # a new pattern drops the old one's exceptions, as Exchange does
            event.cancelled.clear()
        event.data = data
        _touch(event, store.next_seq())
        after = instances.master(event)
    _apply_extras(event, body)
    assert after is not None
    _record_update(store, event, before, after.data(), set(changes))
    return _item_reply(request, box, after)


def _record_update(store: Any, event: Event, before: dict[str, Any], after: dict[str, Any], changed: set[str]) -> None:
    def addresses(data: dict[str, Any]) -> set[str]:
        return {(a.get("emailAddress") or {}).get("address", "").lower() for a in data.get("attendees") or []} - {""}

    removed = addresses(before) - addresses(after)
    if removed:
        store.record_invitation(
            event, "cancellation",
            {**before, "attendees": [a for a in before["attendees"]
                                     if (a.get("emailAddress") or {}).get("address", "").lower() in removed]},
        )
    if after.get("attendees") and (changed & _MEETING_FIELDS or addresses(after) != addresses(before)):
        store.record_invitation(event, "update", after)


@route("DELETE", _ITEM)
def delete_event(request: Request, user: str, eid: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    instance = find(box, cal, eid)
    request.check_if_match(instance.change_key)
    cancel(request, instance)
    return Reply(204)


def cancel(request: Request, instance: Instance) -> None:
    store = request.graph.store
    event = instance.event
    store.record_invitation(event, "cancellation", instance.data())
    if instance.original_start is not None:
        event.exceptions.pop(instance.original_start, None)
        event.cancelled.add(instance.original_start)
        _touch(event, store.next_seq())
        return
    event.calendar.events.pop(event.id, None)
    store.events.pop(event.id, None)


@route("POST", _ITEM + "/cancel")
def cancel_event(request: Request, user: str, eid: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    instance = find(box, cal, eid)
    if not instance.data().get("attendees"):
        raise bad_request("Your request can't be completed. You can't cancel a meeting that has no attendees.",
                          "ErrorInvalidRequest")
    cancel(request, instance)
    return Reply(202)


# -- open extensions on events ------------------------------------------------------------------------


@route("POST", _ITEM + "/extensions")
def add_event_extension(request: Request, user: str, eid: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    event = find(box, cal, eid).event
    value = store_extension(event.extensions, request.json_body("microsoft.graph.openTypeExtension"))
    _touch(event, request.graph.store.next_seq())
    return Reply(201, render.extension(value), entity="microsoft.graph.openTypeExtension")


@route("GET", _ITEM + "/extensions")
def list_event_extensions(request: Request, user: str, eid: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    event = find(box, cal, eid).event
    return Reply(200, {"value": [render.extension(e) for e in event.extensions.values()]},
                 entity="microsoft.graph.openTypeExtension", collection=True)


def extension_of(extensions: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    for key, value in extensions.items():
        if key.lower() == name.lower():
            return value
    raise item_not_found()


@route("GET", _ITEM + r"/extensions/(?P<ext>[^/]+)")
def get_event_extension(request: Request, user: str, eid: str, ext: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    value = extension_of(find(box, cal, eid).event.extensions, ext)
    return Reply(200, render.extension(value), entity="microsoft.graph.openTypeExtension")


@route("PATCH", _ITEM + r"/extensions/(?P<ext>[^/]+)")
def update_event_extension(request: Request, user: str, eid: str, ext: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    event = find(box, cal, eid).event
    value = extension_of(event.extensions, ext)
    body = request.json_body("microsoft.graph.openTypeExtension", partial=True)
    value.update({k: v for k, v in body.items() if not k.startswith("@") and k not in ("id", "extensionName")})
    _touch(event, request.graph.store.next_seq())
    return Reply(204)


@route("DELETE", _ITEM + r"/extensions/(?P<ext>[^/]+)")
def delete_event_extension(request: Request, user: str, eid: str, ext: str, cal: str | None = None) -> Reply:
    box = mailbox(request, user, "calendar")
    event = find(box, cal, eid).event
    value = extension_of(event.extensions, ext)
    del event.extensions[value["extensionName"]]
    _touch(event, request.graph.store.next_seq())
    return Reply(204)

