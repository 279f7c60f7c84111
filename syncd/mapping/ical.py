"""Activity <-> iCalendar object resource (RFC 5545, one UID per resource as RFC 4791 4.1 asks).

Kinds: appointments and calls are VEVENTs, tasks VTODOs. A call carries the category
``options.call_category`` and ``X-SYNCD-KIND:call``; an event made on the calendar with that category is
read as a call.

Values syncd owns are rewritten on every write; everything else on the previous version (``base``) is
kept: other clients' X-properties and parameters, inline files (ATTACH;VALUE=BINARY), RELATED-TO links
other than the parent, alarms that fire later than the reminder (see :mod:`.ical_alarms`), and attendee
parameters. The server's UID is kept. SEQUENCE goes up when the schedule changed. CLASS, TRANSP, ATTACH
by URI and the categories other than syncd's are the activity's own fields (:mod:`.ical_fields`; a
user's category is one of the CRM's ``categories``). What an item lacks of syncd's hidden X-properties
is reported in :attr:`ParsedItem.uncarried` (:mod:`.carried`): not carried, not cleared.

The exact CRM values of status, type, priority and direction travel in ``X-SYNCD-*`` properties; the
standard properties show the mapped value, and :func:`syncd.mapping.options.crm_value` picks the CRM
value back (the carried value while it still matches what is shown).

Identity of an item made on the calendar: its activity id is :func:`activity_id_for_uid` of its UID,
``cal-`` plus the UUID-5 of the UID in syncd's namespace: stable across reads and calendars, so the
same meeting seen twice is one activity. An item without any UID gets the same derivation of its ref.

Recurrence: RRULEs (the same rule twice is one; others are ``Recurrence.extra_rrules``), RDATE (a PERIOD
of another length is also an override of that occurrence), EXDATE and overrides (components with
RECURRENCE-ID) both ways. An override field equal to what the series gives reads back as ``None``
(inherited); an occurrence's own CLASS, TRANSP and alarms are its override's sensitivity, show-as and
reminder (:mod:`.ical_fields`, :mod:`.ical_alarms`), written over what it would take from the series.
Several occurrences without their series (Google's invitation to some of them) are read as
one series from the earliest one's original start, with the others (and its own RDATEs) as RDATEs and
each as an override: the same occurrences, written back with a master. Refused with
:class:`~syncd.errors.ItemError` rather than read as a different schedule: EXRULE (removed by RFC 5545),
RFC 7529 RSCALE rules and an unreadable rule. A time zone no IANA zone matches is kept with its
VTIMEZONE, written back as it was, so a weekday rule in it never moves. An empty ``RRULE:`` is no rule
(clients show one event). A ``RANGE=THISANDFUTURE`` override is carried to every later occurrence as an
override of each, or for a series without end kept as a range (:mod:`.ical_range`, written back with its
RANGE). CREATED, LAST-MODIFIED and
DTSTAMP are bookkeeping: an unreadable one is left out, never a reason to refuse the item.
"""

from __future__ import annotations

import codecs
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

import structlog
from icalendar import (
    Calendar,
    Component,
    Event,
    Todo,
    vDate,
    vDatetime,
    vDDDTypes,
    vDuration,
    vPeriod,
    vText,
    vTime,
)

from syncd.activity_json import format_moment, parse_moment
from syncd.errors import ItemError
from syncd.mapping import ical_repeated_hour as repeated_hour
from syncd.mapping import identity
from syncd.mapping.accepted import storable
from syncd.mapping.carried import NOTHING, Uncarried
from syncd.mapping.context import MappingContext
from syncd.mapping.ical_alarms import occurrence_reminder, read_reminder, write_alarms
from syncd.mapping.ical_fields import (
    OCCURRENCE_OWNED,
    occurrence_sensitivity,
    occurrence_show_as,
    opaque,
    read_attachments,
    read_extra,
    read_sensitivity,
    read_show_as,
    write_fields,
    write_occurrence_fields,
)
from syncd.mapping.ical_fields import OWNED as FIELD_PROPS
from syncd.mapping.ical_parse import parse_calendar
from syncd.mapping.ical_people import (
    email_of,
    hidden_person,
    read_organizer,
    read_owner,
    read_participants,
    read_regarding,
    write_people,
)
from syncd.mapping.ical_props import (
    P_KIND,
    X_CLOSE_REASON,
    X_DIRECTION,
    X_ID,
    X_KIND,
    X_PARTICIPANT,
    X_PLACE,
    X_PRIORITY,
    X_PROJECT,
    X_REGARDING,
    X_STATUS,
    X_TASK_END,
    X_TYPE,
    X_URL,
    all_values,
    lookup,
    text,
    x_text,
)
from syncd.mapping.ical_range import carry_forward
from syncd.mapping.ical_recurrence import (
    canonical_rrule,
    day_end,
    instant_end,
    occurrence_zone,
    series_span,
    write_schedule,
)
from syncd.mapping.ical_time import (
    TimeReader,
    Zone,
    activity_zone,
    add_duration,
    add_timezones,
    align,
    before,
    in_zone,
    span,
    written,
    zone_info,
)
from syncd.mapping.options import MappingOptions, crm_value, priority_value
from syncd.mapping.timezones import iana_for_tzid
from syncd.model import Activity, Direction, Kind, Moment, Override, Recurrence
from syncd.store.rules import day_occurrence, timed_occurrence

log = structlog.get_logger(__name__)

PRODID = "-//syncd//syncd CRM activity sync//EN"

#: Master properties syncd writes; a previous version's values of these are replaced, not kept.
_OWNED = frozenset(
    {
        "UID", "DTSTAMP", "CREATED", "LAST-MODIFIED", "SEQUENCE", "DTSTART", "DTEND", "DURATION", "DUE",
        "RRULE", "RDATE", "EXDATE", "EXRULE", "RECURRENCE-ID", "SUMMARY", "DESCRIPTION", "LOCATION",
        "STATUS", "COMPLETED", "PERCENT-COMPLETE", "PRIORITY", "CATEGORIES", "ORGANIZER", "ATTENDEE",
        "RELATED-TO",
    }
)
#: Properties an override takes from its own fields instead of copying them from the master.
_SCHEDULE = ("DTSTART", "DTEND", "DURATION", "DUE", "RRULE", "RDATE", "EXDATE", "EXRULE")
_OVERRIDDEN = ("SUMMARY", "DESCRIPTION", "LOCATION", "STATUS", X_STATUS)
_DIRECTION_CATEGORY = {Direction.INBOUND: "Inbound", Direction.OUTBOUND: "Outbound"}


@dataclass(frozen=True)
class ParsedItem:
    uid: str | None
    crm_id: str | None
    """From X-SYNCD-ID, else :func:`syncd.mapping.identity.activity_id_from_uid`."""
    activity: Activity
    """``id`` is ``crm_id``, or for an item made on the calendar :func:`activity_id_for_uid`."""
    modified_at: datetime | None
    """LAST-MODIFIED (or DTSTAMP) as aware UTC."""
    categories: tuple[str, ...]
    """Every category the item shows (syncd's own and the CRM's, see ``Activity.categories``)."""
    uncarried: Uncarried = NOTHING
    """syncd's hidden data the item did not carry: the CRM keeps its value (:mod:`.carried`)."""


# --------------------------------------------------------------------------------------------- write


def to_ical(activity: Activity, ctx: MappingContext, base: bytes | None = None) -> bytes:
    """The activity as a whole VCALENDAR; ``base`` (the server's previous text) keeps foreign data."""
    if activity.kind not in (Kind.APPOINTMENT, Kind.CALL, Kind.TASK):
        raise ItemError(activity.id, None, f"a {activity.kind} is not a calendar item")
    if activity.is_event and activity.start is None:
        # The CRM may keep an appointment not yet planned; a VEVENT without DTSTART reads back as nothing.
        raise ItemError(activity.id, "DTSTART", "an appointment or call without a start cannot be shown in a calendar")
    previous = _parse_base(base, activity.id)
    factory = Event if activity.is_event else Todo
    base_master, base_overrides = _base_components(previous, factory.name)
    uid = str(base_master["UID"]) if base_master is not None and base_master.get("UID") else None
    uid = uid or identity.uid_for(activity.id)

    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    if previous is not None:
        for name, value in previous.items():
            if name not in ("PRODID", "VERSION", "METHOD"):
                calendar[name] = value

    master = factory()
    _write_master(master, activity, ctx, uid, base_master)
    calendar.add_component(master)
    moments: list[Moment] = [m for m in (activity.start, activity.end, activity.due) if m is not None]
    for override in repeated_hour.overrides_to_write(activity):
        component = _override_component(factory, master, activity, override, base_overrides, ctx)
        calendar.add_component(component)
        moments.append(override.recurrence_id)
        # The zone of an all-day series' occurrence given its own times needs its VTIMEZONE too.
        moments += [m for m in (override.start, override.end) if isinstance(m, datetime)]
    definition = activity.timezone_definition
    kept = (activity.timezone, definition) if activity.timezone and definition else None
    add_timezones(calendar, moments, kept)
    return calendar.to_ical()


def _parse_base(base: bytes | None, item: str) -> Calendar | None:
    if not base:
        return None
    try:
        return Calendar.from_ical(base)
    except Exception as exc:  # noqa: BLE001 - a broken previous version must not block the CRM's write
        log.warning("previous version unreadable; written without it", item=item, error=str(exc))
        return None


def _base_components(previous: Calendar | None, name: str) -> tuple[Component | None, dict[Any, Component]]:
    if previous is None:
        return None, {}
    master = None
    overrides: dict[Any, Component] = {}
    for component in previous.walk(name):
        rid = component.get("RECURRENCE-ID")
        if rid is None:
            master = master or component
        elif hasattr(rid, "dt"):
            overrides[_instant_key(rid.dt)] = component
    if master is None and overrides:
        # Occurrences without their series: the earliest is the series, as from_ical reads it.
        master = overrides[min(overrides, key=str)]
    if master is None:
        # A VEVENT became a task (or back): keep only the UID, other properties may not fit the new type.
        for component in previous.walk():
            if component.name in ("VEVENT", "VTODO") and component.get("UID"):
                stub = Component()
                stub.add("UID", component["UID"])
                return stub, {}
    return master, overrides


def _instant_key(moment: Moment) -> Any:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC) if moment.tzinfo else moment
    return moment


def _write_master(
    component: Component, activity: Activity, ctx: MappingContext, uid: str, base: Component | None
) -> None:
    options = ctx.options
    component.add("UID", uid)
    component.add("DTSTAMP", (activity.updated_at or activity.created_at or datetime.now(UTC)).astimezone(UTC))
    if activity.created_at:
        component.add("CREATED", activity.created_at.astimezone(UTC))
    if activity.updated_at:
        component.add("LAST-MODIFIED", activity.updated_at.astimezone(UTC))
    write_schedule(component, activity)
    _write_texts(component, activity.subject, activity.description, activity.location)
    _write_status(component, activity.status, activity.is_event, ctx)
    if not activity.is_event:
        if activity.completed_at is not None:
            component.add("COMPLETED", activity.completed_at.astimezone(UTC))
        if activity.completed_at is not None or component.get("STATUS") == "COMPLETED":
            component.add("PERCENT-COMPLETE", 100)
    if activity.priority is not None:
        level = options.priority.get(activity.priority, options.priority.get(activity.priority.casefold()))
        if level is not None:
            component.add("PRIORITY", level)
        component.add(X_PRIORITY, vText(activity.priority))
    categories = _categories(activity, ctx, base)
    if categories:
        component.add("CATEGORIES", categories)
    component.add(X_KIND, activity.kind.value)
    for name, value in (
        (X_TYPE, activity.type),
        (X_DIRECTION, activity.direction.value if activity.direction else None),
        (X_PLACE, activity.place),
        (X_PROJECT, activity.project),
        (X_CLOSE_REASON, activity.close_reason),
        (X_TASK_END, None if activity.is_event or activity.end is None else format_moment(activity.end)),
    ):
        if value is not None:
            component.add(name, vText(value))
    component.add(X_ID, vText(activity.id))
    if options.crm_url:
        url = options.crm_url.format(id=activity.id)
        component.add("URL", url)
        component.add(X_URL, vText(url))
    if activity.parent_id:
        component.add("RELATED-TO", identity.uid_for(activity.parent_id), parameters={"RELTYPE": "PARENT"})
    write_people(component, activity, ctx, base)
    write_fields(component, activity, base)
    end = activity.end if activity.is_event else activity.due
    zone = activity_zone(activity)
    write_alarms(component, activity.reminder_minutes, activity.start, end, zone, activity.subject, base)
    if base is not None:
        _keep_foreign(component, base, ctx, description_changed=text(base, "DESCRIPTION") != activity.description)


def _write_texts(component: Component, subject: str | None, description: str | None, location: str | None) -> None:
    for name, value in (("SUMMARY", subject), ("DESCRIPTION", description), ("LOCATION", location)):
        if value:
            component.add(name, value)


def _write_status(component: Component, status: str | None, is_event: bool, ctx: MappingContext) -> None:
    if status is None:
        return
    target = ctx.options.status_target(status)
    component.add("STATUS", target.ical_event if is_event else target.ical_todo)
    component.add(X_STATUS, vText(status))


def _categories(activity: Activity, ctx: MappingContext, base: Component | None) -> list[str]:
    """The type's, the call's and the direction's categories, then the activity's own (``categories``,
    which on reading are every other category the item shows: a user's own come back as the CRM's)."""
    options = ctx.options
    ours = []
    if activity.type:
        ours.append(options.type_category(activity.type))
    if activity.kind is Kind.CALL:
        ours.append(options.call_category)
    if options.direction_categories and activity.direction:
        ours.append(_DIRECTION_CATEGORY[activity.direction])
    result: list[str] = []
    seen: set[str] = set()
    for category in [*ours, *activity.categories]:
        if category.casefold() not in seen:
            seen.add(category.casefold())
            result.append(category)
    return result


def _keep_foreign(component: Component, base: Component, ctx: MappingContext, description_changed: bool) -> None:
    """Copy what other clients wrote on the previous version and syncd does not own."""
    for name, value in base.items():
        if name in _OWNED or name in FIELD_PROPS or name.startswith("X-SYNCD-"):
            continue
        if name == "URL" and ctx.options.crm_url:
            continue
        if name == "X-ALT-DESC" and description_changed:
            continue  # Outlook shows the HTML copy first; a stale one would hide the CRM's new text
        component[name] = value
    foreign_links = [
        r for r in all_values(base, "RELATED-TO") if str(r.params.get("RELTYPE", "PARENT")).upper() != "PARENT"
    ]
    for link in foreign_links:
        component.add("RELATED-TO", link)
    for sub in base.subcomponents:
        if sub.name != "VALARM":
            component.add_component(sub)
    schedule = [component.get(n) for n in ("DTSTART", "DTEND", "DUE", "RRULE", "EXDATE")]
    before = [base.get(n) for n in ("DTSTART", "DTEND", "DUE", "RRULE", "EXDATE")]
    sequence = int(base.get("SEQUENCE", 0) or 0)
    if _ical(schedule) != _ical(before):
        sequence += 1  # RFC 5546 2.1.4: attendees' copies are replaced only by a higher SEQUENCE
    if sequence:
        component.add("SEQUENCE", sequence)


def _ical(values: list[Any]) -> list[bytes | None]:
    result: list[bytes | None] = []
    for value in values:
        items = value if isinstance(value, list) else [value]
        result.extend(None if v is None else v.to_ical() for v in items)
    return result


def _override_component(
    factory: type[Component],
    master: Component,
    activity: Activity,
    override: Override,
    base: dict[Any, Component],
    ctx: MappingContext,
) -> Component:
    assert activity.start is not None  # write_schedule refused a recurrence without a start
    zone = activity_zone(activity)
    component = factory()
    for name, value in master.items():
        if name not in _SCHEDULE and name not in _OVERRIDDEN and name != "SEQUENCE":
            component[name] = value
    rid = align(override.recurrence_id, activity.start, zone)
    written_rid = repeated_hour.instance_value(override.recurrence_id, activity, zone)
    ranged = {"RANGE": "THISANDFUTURE"} if override.this_and_future else {}
    component.add("RECURRENCE-ID", written_rid, parameters=ranged)
    # One occurrence of a timed series made all-day: DTSTART;VALUE=DATE, its RECURRENCE-ID still a time.
    day = day_occurrence(override.start, activity.all_day)
    # The reverse, one occurrence of an all-day series given its own times: in its own zone where a TZID
    # can name it, its RECURRENCE-ID still a date.
    timed = timed_occurrence(override.start, activity.all_day)
    kind = day or timed  # its own value type, kept rather than aligned with the series' start
    start = rid if override.start is None else override.start if kind else align(override.start, activity.start, zone)
    own_zone = occurrence_zone(start, zone) if isinstance(start, datetime) and timed else zone
    component.add("DTSTART", written(start, own_zone))
    if activity.is_event:
        end = day_end(start, override.end) if day else override.end
        if timed and isinstance(start, datetime):
            end = instant_end(start, end)
        if end is None:
            try:
                end = add_duration(start, series_span(activity))
            except OverflowError:
                end = start  # past 9999-12-31 there is no end to write; DTSTART alone is one day (or an instant)
        if not ((activity.all_day or day) and end == start):
            component.add("DTEND", written(end, own_zone))
    _write_texts(
        component,
        _inherit(override.subject, activity.subject),
        _inherit(override.description, activity.description),
        _inherit(override.location, activity.location),
    )
    _write_status(component, _inherit(override.status, activity.status), activity.is_event, ctx)
    previous = base.get(_instant_key(written_rid))
    if override.reminder_minutes is not None or override.reminder_off:
        alarm_end = end if activity.is_event else None
        subject = _inherit(override.subject, activity.subject) or ""
        write_alarms(component, override.reminder_minutes, start, alarm_end, zone, subject, previous)
    else:
        for alarm in master.walk("VALARM"):
            component.add_component(alarm)
    if previous is not None:
        # What a client set on this one occurrence (its own X- properties) wins over what the series
        # says; syncd owns only its own properties, and the occurrence's CLASS and TRANSP are the CRM's.
        for name, value in previous.items():
            if name not in _OWNED and name not in OCCURRENCE_OWNED and not name.startswith("X-SYNCD-"):
                component[name] = value
    write_occurrence_fields(component, override.sensitivity, override.show_as, activity.is_event)
    return component


def _inherit(value: str | None, series: str | None) -> str | None:
    return value if value is not None else series


# ---------------------------------------------------------------------------------------------- read


class _Cursor:
    """The property being read, so an unexpected failure still names it in the ItemError."""

    def __init__(self, item: str) -> None:
        self.item = item
        self.prop: str | None = None

    def at(self, prop: str) -> _At:
        self.prop = prop
        return _At(self, prop)


class _At:
    """``with cursor.at(prop):`` a failure reading ``prop`` is an ItemError naming it. A class rather than
    a ``contextmanager`` generator: a read enters some 16 of these, at 1.4 µs each as a generator and
    0.4 µs as this (timeit, CPython 3.11)."""

    __slots__ = ("cursor", "prop")

    def __init__(self, cursor: _Cursor, prop: str) -> None:
        self.cursor = cursor
        self.prop = prop

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is None or issubclass(kind, ItemError) or not issubclass(kind, _UNREADABLE):
            return
        raise ItemError(self.cursor.item, self.prop, f"unreadable value ({exc})") from None


_UNREADABLE = (ValueError, TypeError, AttributeError, KeyError, OverflowError)


def from_ical(data: bytes | str, ctx: MappingContext, ref: str) -> ParsedItem:
    """Read one calendar object resource; an unreadable one raises ItemError naming the property."""
    cursor = _Cursor(ref or "?")
    try:
        return _from_ical(data, ctx, ref, cursor)
    except ItemError:
        raise
    except Exception as exc:  # noqa: BLE001 - icalendar and dateutil raise many types on odd input
        raise ItemError(cursor.item, cursor.prop, f"unreadable ({type(exc).__name__}: {exc})") from None


def _decode(data: bytes | str, item: str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    # A byte order mark says what the text is; Windows tools export UTF-16 with one.
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16").removeprefix("\ufeff")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 5545 asks for UTF-8; old Outlook exports are Windows-1252, which decodes any byte.
        log.warning("item is not UTF-8; read as Windows-1252", item=item)
        return data.decode("cp1252", errors="replace")


def _from_ical(data: bytes | str, ctx: MappingContext, ref: str, cursor: _Cursor) -> ParsedItem:
    with cursor.at("VCALENDAR"):
        calendar = parse_calendar(_decode(data, cursor.item))
    components = [c for c in calendar.walk() if c.name in ("VEVENT", "VTODO")]
    if not components:
        raise ItemError(cursor.item, "VEVENT", "no VEVENT or VTODO in the item")
    if len({c.name for c in components}) > 1:
        raise ItemError(cursor.item, components[1].name, "mixes events and to-dos in one item")
    masters = [c for c in components if lookup(c, "RECURRENCE-ID") is None]
    uids = {str(uid) for c in components if (uid := lookup(c, "UID"))}
    if len(uids) > 1:
        raise ItemError(cursor.item, "UID", "holds several UIDs (RFC 4791 allows one per resource)")
    if len(masters) > 1:
        raise ItemError(cursor.item, "UID", "holds several components without RECURRENCE-ID")
    uid = uids.pop() if uids else None
    cursor.item = ref or uid or "?"
    # Only overrides (invited to one occurrence): that occurrence is the item, without a series.
    # Invited to several (Google sends these): the earliest is read as the series' start, see below.
    master = masters[0] if masters else min(components, key=lambda c: _rid_key(c, cursor))
    overrides = [c for c in components if c is not master]

    floating = ctx.default_timezone
    x_wr = lookup(calendar, "X-WR-TIMEZONE")
    if x_wr is not None:
        floating = iana_for_tzid(str(x_wr)) or floating
    reader = TimeReader(calendar, cursor.item, floating)
    # Only a zone that follows a definition all year long runs a series on that definition's days and hours.
    reader.series = (not masters and len(components) > 1) or any(
        lookup(c, "RRULE") is not None or lookup(c, "RDATE") is not None for c in components
    )

    # A blank id names nothing (the CRM's rules refuse it): the item is then one made on the calendar.
    crm_id = _named(x_text(master, X_ID)) or _named(identity.activity_id_from_uid(uid))
    activity_id = crm_id or identity.activity_id_for_uid(uid or ref)
    activity, categories, uncarried = _read_master(master, ctx, reader, cursor, activity_id)
    if not masters and overrides:
        with cursor.at("RECURRENCE-ID"):
            activity = _occurrences_as_series(activity, components, reader)
        overrides = components
    with cursor.at("RECURRENCE-ID"):
        # A series starting in a repeated hour's second pass: see ical_repeated_hour.
        activity, first = repeated_hour.unfold_start(activity, master, overrides, reader) if masters else (
            activity, None)
    if overrides:
        with cursor.at("RECURRENCE-ID"):
            activity = _with_overrides(activity, overrides, ctx, reader, cursor)
    activity = repeated_hour.refold(activity, first)
    modified = _stamp(master, "LAST-MODIFIED") or _stamp(master, "DTSTAMP")
    activity = storable(activity, cursor.item)
    return ParsedItem(
        uid=uid, crm_id=crm_id, activity=activity, modified_at=modified, categories=categories, uncarried=uncarried
    )


def _named(ident: str | None) -> str | None:
    return ident if ident and ident.strip() else None


def _stamp(component: Component, name: str) -> datetime | None:
    """CREATED, LAST-MODIFIED or DTSTAMP as aware UTC; ``None`` when absent or unusable.

    They are bookkeeping, shown to no one: one a client wrote wrongly (``CREATED:00010101T000000``
    east of Greenwich, text where a time belongs) is left out rather than refusing the item."""
    value = lookup(component, name)
    if value is None:
        return None
    try:
        return _utc(_dt(value))
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError):
        return None


def _utc(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("not a date-time")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


#: icalendar's classes of the values that have a ``dt``: dates, date-times, durations, periods, times.
_TIME_VALUES = (vDDDTypes, vDate, vDatetime, vDuration, vPeriod, vTime)


def _time_value(component: Component, name: str) -> object:
    """The ``dt`` of a property, for the caller to check which of those it is.

    icalendar types every property as the union of all value classes, most of them without ``dt``; a
    value it could not parse, or a property given twice (a list), is refused here.
    """
    return _dt(component[name])


def _dt(value: object) -> object:
    if not isinstance(value, _TIME_VALUES):
        raise TypeError(f"not a date, time or duration: {value!r}")
    return value.dt


def _integer(component: Component, name: str) -> int:
    """An INTEGER property (PRIORITY) as ``int``; refused as ``int()`` refuses it."""
    value = component[name]
    if not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    return int(value)


def _read_categories(component: Component | None) -> list[str]:
    if component is None:
        return []
    result: list[str] = []
    for value in all_values(component, "CATEGORIES"):
        cats = getattr(value, "cats", None)
        result.extend(str(c) for c in (cats if cats is not None else [value]))
    return [c for c in result if c]


def _read_times(
    component: Component, is_event: bool, reader: TimeReader, cursor: _Cursor
) -> tuple[Moment | None, Moment | None, str | None]:
    """(start, end or due, zone); a missing end is ``start`` for a day, ``None`` for a time."""
    start = end = None
    zone: str | None = None
    end_zone: str | None = None
    # Each value looked up once: icalendar's component[name] folds the name again, through three calls.
    value = lookup(component, "DTSTART")
    if value is not None:
        with cursor.at("DTSTART"):
            start, zone = reader.moment(value, "DTSTART")
    elif is_event:
        raise ItemError(cursor.item, "DTSTART", "an event needs a start")
    end_name = "DTEND" if is_event else "DUE"
    value = lookup(component, end_name)
    if value is not None:
        with cursor.at(end_name):
            end, end_zone = reader.moment(value, end_name)
            zone = zone if start is not None else end_zone
            if start is not None:
                end = align(end, start, reader.zone(zone))
    elif (value := lookup(component, "DURATION")) is not None and start is not None:
        with cursor.at("DURATION"):
            duration = _dt(value)
            if not isinstance(duration, timedelta):
                raise TypeError("not a duration")
            end = add_duration(start, duration)
    elif is_event and not isinstance(start, datetime):
        end = start
    if zone is None and isinstance(start, datetime):
        # A start in a repeated hour's second pass, which syncd writes in UTC: in its zone again.
        zone = repeated_hour.start_zone(component, start, end_zone, reader)
        if zone is not None:
            start, end = in_zone(start, reader.zone(zone)), None if end is None else in_zone(end, reader.zone(zone))
    if end is not None and start is not None and before(end, start):
        raise ItemError(cursor.item, end_name, "ends before it starts")
    return start, end, zone


def _read_status(component: Component, is_event: bool, ctx: MappingContext) -> str | None:
    options = ctx.options
    value = lookup(component, "STATUS")
    shown = str(value).upper() if value is not None else None
    if shown is None and not is_event and lookup(component, "COMPLETED") is not None:
        shown = "COMPLETED"
    carried = x_text(component, X_STATUS)
    if is_event:
        return crm_value(
            carried, shown, lambda v: options.status_target(v).ical_event, options.status_inbound.ical_event
        )
    return crm_value(carried, shown, lambda v: options.status_target(v).ical_todo, options.status_inbound.ical_todo)


def _read_type(categories: list[str], carried: str | None, ctx: MappingContext) -> str | None:
    options = ctx.options
    folded = {c.casefold() for c in categories}
    if carried is not None and options.type_category(carried).casefold() in folded:
        return carried
    return options.type_from_categories(categories)


def _read_master(
    component: Component, ctx: MappingContext, reader: TimeReader, cursor: _Cursor, activity_id: str
) -> tuple[Activity, tuple[str, ...], Uncarried]:
    options = ctx.options
    is_event = component.name == "VEVENT"
    with cursor.at("CATEGORIES"):
        categories = _read_categories(component)
    folded = {c.casefold() for c in categories}
    crm_type = _read_type(categories, x_text(component, X_TYPE), ctx)
    kind = Kind.TASK
    if is_event:
        call = x_text(component, X_KIND) == Kind.CALL.value or options.call_category.casefold() in folded
        kind = Kind.CALL if call else Kind.APPOINTMENT
    start, end, zone_name = _read_times(component, is_event, reader, cursor)
    zone = reader.zone(zone_name)
    all_day = start is not None and not isinstance(start, datetime)
    if start is None and end is not None:
        all_day = not isinstance(end, datetime)

    with cursor.at("STATUS"):
        status = _read_status(component, is_event, ctx)
    with cursor.at("PRIORITY"):
        shown_priority = _integer(component, "PRIORITY") if lookup(component, "PRIORITY") is not None else None
        priority = priority_value(options, x_text(component, X_PRIORITY), shown_priority)
    direction = None
    with cursor.at(X_DIRECTION):
        carried_direction = x_text(component, X_DIRECTION)
        direction = Direction(carried_direction) if carried_direction else None
        if options.direction_categories:
            for value, category in _DIRECTION_CATEGORY.items():
                if category.casefold() in folded:
                    direction = value
    completed_at = None
    if not is_event and lookup(component, "COMPLETED") is not None:
        with cursor.at("COMPLETED"):
            done = _time_value(component, "COMPLETED")
            if isinstance(done, date) and not isinstance(done, datetime):
                # RFC 5545 wants a UTC date-time; a client that wrote the day means its start, where the user is.
                done = datetime.combine(done, time(), tzinfo=zone_info(zone or reader.floating_zone))
            completed_at = _utc(done)
    with cursor.at("VALARM"):
        # An absolute alarm on a day of no zone rings at an hour of the user's day, not of UTC's.
        reminder = read_reminder(component, start, end, zone or reader.floating_zone)
    with cursor.at("RRULE"):
        recurrence, periods = _read_recurrence(component, start, end, zone, reader, cursor)
        if recurrence is not None and periods:
            recurrence = dataclasses.replace(recurrence, overrides=tuple(periods))
    with cursor.at("ATTENDEE"):
        participants = read_participants(component, ctx, cursor.item)
        owner = read_owner(component, ctx)
    regarding = read_regarding(component, cursor.item)
    parent_id = None
    with cursor.at("RELATED-TO"):
        for link in all_values(component, "RELATED-TO"):
            if str(link.params.get("RELTYPE", "PARENT")).upper() == "PARENT":
                target = str(link)
                parent_id = identity.activity_id_from_uid(target) or identity.activity_id_for_uid(target)
                break
    stamps = {name: _stamp(component, name) for name in ("CREATED", "LAST-MODIFIED")}
    subject = text(component, "SUMMARY") or ""
    description = text(component, "DESCRIPTION")
    task_end = None if is_event else _task_end(component, cursor)
    location = text(component, "LOCATION")
    place = x_text(component, X_PLACE)
    project = x_text(component, X_PROJECT)
    close_reason = x_text(component, X_CLOSE_REASON)
    with cursor.at("CLASS"):
        sensitivity = read_sensitivity(component)
    with cursor.at("TRANSP"):
        show_as, only_opaque = read_show_as(component) if is_event else (None, False)
    with cursor.at("ATTACH"):
        attachments = read_attachments(component)
    with cursor.at("ORGANIZER"):
        organizer = read_organizer(component, ctx, owner)
    extra = read_extra(component, cursor.item)
    # Built once, with every field (dataclasses.replace after it cost 8 % of this function, cProfile).
    activity = Activity(
        id=activity_id,
        kind=kind,
        subject=subject,
        owner=owner,
        description=description,
        start=start,
        end=end if is_event else task_end,
        all_day=all_day,
        timezone=zone_name,
        timezone_definition=reader.kept.get(zone_name) if zone_name else None,
        due=None if is_event else end,
        completed_at=completed_at,
        status=status,
        type=crm_type,
        priority=priority,
        direction=direction,
        location=location,
        place=place,
        project=project,
        reminder_minutes=reminder,
        recurrence=recurrence,
        participants=participants,
        regarding=regarding,
        parent_id=parent_id,
        close_reason=close_reason,
        sensitivity=sensitivity,
        show_as=show_as,
        categories=_own_categories(categories, is_event, crm_type, ctx),
        attachments=attachments,
        extra=extra or {},
        organizer=organizer,
        updated_at=stamps["LAST-MODIFIED"],
        created_at=stamps["CREATED"],
    )
    uncarried = _uncarried(component, activity, ctx, folded, shown_priority, only_opaque, extra is None)
    return activity, tuple(categories), uncarried


def _own_categories(
    categories: list[str], is_event: bool, crm_type: str | None, ctx: MappingContext
) -> tuple[str, ...]:
    """The item's categories but those syncd shows for the type, a call and the direction."""
    options = ctx.options
    managed = {options.call_category.casefold()} if is_event else set()
    if crm_type:
        managed.add(options.type_category(crm_type).casefold())
    if options.direction_categories:
        managed |= {c.casefold() for c in _DIRECTION_CATEGORY.values()}
    seen: set[str] = set()
    own = []
    for category in categories:
        folded = category.casefold()
        if folded not in managed and folded not in seen:
            seen.add(folded)
            own.append(category)
    return tuple(own)


def _uncarried(
    component: Component, activity: Activity, ctx: MappingContext, folded: set[str], shown_priority: int | None,
    only_opaque: bool, no_extra: bool,
) -> Uncarried:
    """What of syncd's hidden data this item lacks (a client that dropped the X-properties)."""
    options = ctx.options
    missing = {
        name for name, carrier in (
            ("place", X_PLACE), ("project", X_PROJECT), ("close_reason", X_CLOSE_REASON), ("regarding", X_REGARDING),
        ) if lookup(component, carrier) is None
    }
    if no_extra:
        missing.add("extra")
    if not activity.is_event:
        missing.add("show_as")  # a VTODO has no TRANSP
        if lookup(component, X_TASK_END) is None:
            missing.add("end")
    shown: dict[str, Any] = {}
    if lookup(component, X_DIRECTION) is None:
        if options.direction_categories:
            shown["direction"] = partial(_same_direction, activity.direction)
        else:
            missing.add("direction")
    if lookup(component, X_STATUS) is None:
        value = lookup(component, "STATUS")
        status = str(value).upper() if value is not None else None
        shown["status"] = partial(_status_shows, options, activity.is_event, status)
    if lookup(component, X_PRIORITY) is None:
        level = shown_priority or None
        shown["priority"] = partial(_priority_shows, options, level)
    if lookup(component, X_TYPE) is None:
        shown["type"] = partial(_type_shows, options, activity.type is None, folded)
    if only_opaque:
        shown["show_as"] = _shows_opaque
    kinds = frozenset(
        (email_of(a) or "").casefold() for a in all_values(component, "ATTENDEE")
        if email_of(a) and P_KIND not in getattr(a, "params", {})
    )
    return Uncarried(
        fields=frozenset(missing),
        shown=shown,
        type_category=options.type_category,
        kinds=kinds,
        hidden_people=hidden_person if lookup(component, X_PARTICIPANT) is None else None,
    )


# The CRM-side tests of what an item shows, as module-level functions with their values bound by
# ``partial``, not closures: a pull parsed in worker processes (syncd.connectors.parse_pool) pickles them.
def _same_direction(direction: Direction | None, crm: Activity) -> bool:
    return direction == crm.direction


def _status_shows(options: MappingOptions, is_event: bool, status: str | None, crm: Activity) -> bool:
    if crm.status is None:
        return status is None
    target = options.status_target(crm.status)
    return (target.ical_event if is_event else target.ical_todo) == status


def _priority_shows(options: MappingOptions, level: int | None, crm: Activity) -> bool:
    return (options.priority.get(crm.priority) if crm.priority else None) == level


def _type_shows(options: MappingOptions, no_type: bool, folded: set[str], crm: Activity) -> bool:
    return no_type if crm.type is None else options.type_category(crm.type).casefold() in folded


def _shows_opaque(crm: Activity) -> bool:
    return opaque(crm.show_as)


def _task_end(component: Component, cursor: _Cursor) -> Moment | None:
    carried = x_text(component, X_TASK_END)
    if carried is None:
        return None
    with cursor.at(X_TASK_END):
        return parse_moment(carried)


def _read_recurrence(
    component: Component, start: Moment | None, end: Moment | None, zone: Zone, reader: TimeReader,
    cursor: _Cursor,
) -> tuple[Recurrence | None, list[Override]]:
    """RRULEs, RDATEs and EXDATEs; and an override for each RDATE period that lasts other than the series."""
    if lookup(component, "EXRULE") is not None:
        # RFC 5545 removed EXRULE (Appendix A.3); no target syncd writes to can express it.
        raise ItemError(cursor.item, "EXRULE", "exclusion rules (EXRULE, obsolete since RFC 5545) cannot be kept")
    rules = _read_rrules(component, start, zone, reader, cursor)
    rdate_props = all_values(component, "RDATE")
    if not rules and not rdate_props:
        return None, []
    if start is None:
        raise ItemError(cursor.item, "DTSTART", "a recurring item needs a start")
    all_day = not isinstance(start, datetime)
    length = span(start, end, all_day)
    rdates: list[Moment] = []
    periods: list[Override] = []
    with cursor.at("RDATE"):
        for value, period_end in _dated_values(rdate_props):
            moment = _in_series(reader.moment(value, "RDATE")[0], start, zone)
            if moment == start or moment in rdates:
                continue  # DTSTART is the first occurrence already; a set has no duplicates
            rdates.append(moment)
            if period_end is not None:
                finish = period_end if not isinstance(period_end, timedelta) else add_duration(moment, period_end)
                finish = _in_series(finish, start, zone)
                if span(moment, finish, all_day) != length:
                    periods.append(Override(recurrence_id=moment, end=in_zone(finish, zone)))
    if not rules and not rdates:
        return None, []  # RDATE only at DTSTART: the one occurrence the item has anyway
    exdates: list[Moment] = []
    with cursor.at("EXDATE"):
        for value, _ in _dated_values(all_values(component, "EXDATE")):
            exdates.append(_in_series(reader.moment(value, "EXDATE")[0], start, zone))
    main, *extra = rules or [""]
    return Recurrence(rrule=main, exdates=tuple(exdates), rdates=tuple(rdates), extra_rrules=tuple(extra)), periods


def _read_rrules(
    component: Component, start: Moment | None, zone: Zone, reader: TimeReader, cursor: _Cursor
) -> list[str]:
    """The item's distinct RRULE values, canonical; the same rule given twice is one rule."""
    found: list[str] = []
    for rule in all_values(component, "RRULE"):
        if not hasattr(rule, "to_ical") or type(rule).__name__ == "vBroken":
            raise ItemError(cursor.item, "RRULE", "is not a valid recurrence rule")
        if not rule.to_ical().strip():
            # "RRULE:" (or only parts icalendar cannot read): no rule at all; clients write it when a
            # series is turned back into one event, and show one event.
            log.warning("empty RRULE read as no recurrence", item=cursor.item)
            continue
        if "RSCALE" in {str(key).upper() for key in rule}:
            raise ItemError(
                cursor.item, "RRULE",
                "a rule in another calendar scale (RFC 7529 RSCALE, e.g. a Hebrew or Chinese date) cannot be "
                "expanded or kept by syncd; the item is left alone",
            )
        if start is None:
            raise ItemError(cursor.item, "DTSTART", "a recurring item needs a start")
        series_zone = zone or (reader.floating_zone if not isinstance(start, datetime) else None)
        text_value = canonical_rrule(rule.to_ical().decode("utf-8"), not isinstance(start, datetime), series_zone)
        canonical = text_value.to_ical().decode("ascii")
        if canonical not in found:
            found.append(canonical)
    return found


def _dated_values(props: list[Any]) -> Iterator[tuple[Any, Moment | timedelta | None]]:
    """Each value of RDATE/EXDATE properties as a DTSTART-like value (with the property's TZID), and
    the end or duration when it is a PERIOD."""
    for prop in props:
        for value in getattr(prop, "dts", None) or [prop]:
            params = {**(getattr(prop, "params", None) or {}), **(value.params or {})}
            period_end = None
            single = value
            if isinstance(value.dt, tuple):
                first, period_end = value.dt
                single = vDDDTypes(first)
            single.params = params
            yield single, period_end


def _in_series(moment: Moment, start: Moment, zone: Zone) -> Moment:
    """An EXDATE/RECURRENCE-ID/override time in the series' value type; a date-time on an all-day
    series means the day it names on its own wall clock (Outlook writes ``TZID=...:20240715T000000``)."""
    if isinstance(moment, datetime) and not isinstance(start, datetime):
        return moment.date()
    return align(moment, start, zone)


def _with_overrides(
    activity: Activity, components: list[Component], ctx: MappingContext, reader: TimeReader, cursor: _Cursor
) -> Activity:
    if activity.recurrence is None or activity.start is None:
        log.warning("occurrence overrides without a recurring series ignored", item=cursor.item)
        return activity
    zone = activity_zone(activity)
    series = series_span(activity)
    overrides = []
    ranges: list[Moment] = []
    for component in components:
        rid_prop = component["RECURRENCE-ID"]
        rid_value, _ = reader.moment(rid_prop, "RECURRENCE-ID")
        rid = _in_series(rid_value, activity.start, zone)
        if str(rid_prop.params.get("RANGE", "")).upper() == "THISANDFUTURE":
            ranges.append(rid)
        start, end, _ = _read_times(component, activity.is_event, reader, cursor)
        day = day_occurrence(start, activity.all_day)
        if day and rid in ranges:
            # RFC 5545 does not say what "this and later, all-day" makes of later occurrences' times.
            raise ItemError(cursor.item, "RECURRENCE-ID", "makes this and every later occurrence of a timed "
                            "series all-day (RANGE=THISANDFUTURE); RFC 5545 leaves open what that makes of the "
                            "later occurrences' times, so the item is left alone")
        timed = timed_occurrence(start, activity.all_day)
        own_zone: Zone = zone
        if timed and rid in ranges:
            raise ItemError(cursor.item, "RECURRENCE-ID", "gives this and every later occurrence of an all-day "
                            "series its own times (RANGE=THISANDFUTURE); RFC 5545 leaves open what that makes of "
                            "the later occurrences' days, so the item is left alone")
        if day:
            # One occurrence of a timed series made all-day (Thunderbird writes it): its own days, kept as
            # dates rather than read on the series' clock.
            assert isinstance(start, date)
            end = day_end(start, end) if activity.is_event else None
        elif timed:
            # One occurrence of an all-day series given its own times: kept in its own zone, not cut to its day.
            assert isinstance(start, datetime)
            end = instant_end(start, end) if activity.is_event else None
            own_zone = start.tzinfo
        else:
            start = _in_series(start, activity.start, zone) if start is not None else rid
            end = _in_series(end, activity.start, zone) if end is not None else None
        own_end = end is not None and (day or timed or span(start, end, activity.all_day) != series)
        status = _read_status(component, activity.is_event, ctx)
        occurrence_end = end if end is not None else _after(start, series)
        reminder, reminder_off = occurrence_reminder(
            component, start, occurrence_end, zone or reader.floating_zone, activity.reminder_minutes
        )
        overrides.append(
            Override(
                recurrence_id=rid,
                start=None if start == rid else start,
                end=in_zone(end, own_zone) if own_end and end is not None and activity.is_event else None,
                subject=_differs(text(component, "SUMMARY") or "", activity.subject),
                description=_differs(text(component, "DESCRIPTION") or "", activity.description or ""),
                location=_differs(text(component, "LOCATION") or "", activity.location or ""),
                status=None if status == activity.status else status,
                reminder_minutes=reminder,
                reminder_off=reminder_off,
                sensitivity=occurrence_sensitivity(component, activity.sensitivity),
                show_as=occurrence_show_as(component, activity.show_as) if activity.is_event else None,
            )
        )
    overrides = carry_forward(activity, overrides, ranges)
    # An override component wins over what an RDATE period said of the same occurrence.
    taken = {_instant_key(o.recurrence_id) for o in overrides}
    overrides += [o for o in activity.recurrence.overrides if _instant_key(o.recurrence_id) not in taken]
    overrides.sort(key=lambda o: _instant_key(o.recurrence_id))
    return activity.replace(recurrence=dataclasses.replace(activity.recurrence, overrides=tuple(overrides)))


def _after(start: Moment, length: timedelta) -> Moment | None:
    try:
        return add_duration(start, length)
    except OverflowError:  # past 9999-12-31: no end (an alarm relative to it reads as unknown)
        return None


def _rid_key(component: Component, cursor: _Cursor) -> datetime:
    with cursor.at("RECURRENCE-ID"):
        value = _time_value(component, "RECURRENCE-ID")
        if not isinstance(value, date):
            raise TypeError("not a date or date-time")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(), tzinfo=UTC)


def _occurrences_as_series(activity: Activity, components: list[Component], reader: TimeReader) -> Activity:
    """Several occurrences of a series whose master the calendar does not hold (an invitation to some
    of them), as one series the CRM keeps whole: it starts at the earliest RECURRENCE-ID, the others
    are RDATEs, and each component then becomes an override of its occurrence. Written back, the item
    shows the very same occurrences (RFC 5545 3.8.5.2), with a master."""
    if activity.start is None:
        raise ItemError(activity.id, "DTSTART", "a recurring item needs a start")
    own_start = activity.start
    zone = activity_zone(activity)
    rids = [_in_series(reader.moment(c["RECURRENCE-ID"], "RECURRENCE-ID")[0], own_start, zone) for c in components]
    first = min(rids, key=_instant_key)
    moved = _shift(own_start, first)
    # The earliest one's own RDATEs are meetings too (Lotus Notes invites to "this and later" with them).
    own = activity.recurrence or Recurrence(rrule="")
    rdates = {r for r in (*rids, *own.rdates) if r != first}
    return activity.replace(
        start=first,
        end=None if activity.end is None else moved(activity.end),
        due=None if activity.due is None else moved(activity.due),
        recurrence=Recurrence(rrule="", rdates=tuple(sorted(rdates, key=_instant_key)), overrides=own.overrides),
    )


def _shift(old: Moment, new: Moment) -> Callable[[Moment], Moment]:
    """Moves a moment as ``old`` moves to ``new``: by the same days and time (wall clock for days)."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        delta = new - old
        return lambda m: m + delta if isinstance(m, datetime) else m
    days = _as_day(new) - _as_day(old)
    return lambda m: m + days


def _as_day(moment: Moment) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def _differs(value: str, series: str) -> str | None:
    return None if value == series else value
