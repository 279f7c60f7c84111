"""Times in the second pass of a repeated hour (a clock set back), written so that they keep their instant.

A ``TZID=`` local time in a repeated hour names its first pass (RFC 5545 3.3.5), so the second pass
cannot be written that way; RFC 5545 lets most properties take UTC instead (DTSTART 3.8.2.4, DTEND,
DUE, RECURRENCE-ID 3.8.4.4, EXDATE 3.8.5.1, RDATE 3.8.5.2):

* a single event or to-do starting there: DTSTART in UTC. Its zone (``Activity.timezone``) travels in
  ``X-SYNCD-TZID``; a client that drops that still says it in the TZID of DTEND (or DUE) when that is
  zoned. Read back, a UTC start in the second pass of the zone one of them names is in that zone; any
  other UTC start stays UTC, as the item says (:meth:`syncd.mapping.ical_time.TimeReader.zone_of_start`).
* a series starting there: its rule runs on the wall clock, so DTSTART is that wall time (read as the
  first pass), DTEND or DUE in UTC at the same length from it (an exact length, as the CRM's is), and
  an override moves the first occurrence to its real instant. Read back, that override is folded into
  the series again (:func:`unfold_start`, :func:`refold`), so the CRM's activity comes back unchanged.
* an occurrence's RECURRENCE-ID, EXDATE or RDATE there: in UTC, except the series' first occurrence,
  whose RECURRENCE-ID and EXDATE are the wall time its DTSTART gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from icalendar import Component

from syncd.mapping.ical_props import X_TZID, x_text
from syncd.mapping.ical_time import TimeReader, Zone, activity_zone, align, in_zone, second_pass, written
from syncd.model import Activity, Moment, Override


def first_pass(activity: Activity) -> datetime | None:
    """The time a recurring activity's DTSTART names when its start lies in a second pass (its wall time,
    which RFC 5545 reads as the first pass); ``None`` for any other activity."""
    if activity.recurrence is None or not isinstance(activity.start, datetime):
        return None
    local = in_zone(activity.start, activity_zone(activity))
    assert isinstance(local, datetime)
    return local.replace(fold=0) if second_pass(local) else None


def start_value(activity: Activity, zone: Zone) -> Moment | None:
    """DTSTART as written: a single item's second pass in UTC, a series' start as its wall time."""
    if activity.start is None:
        return None
    return in_zone(activity.start, zone) if activity.recurrence is not None else written(activity.start, zone)


def carried_zone(activity: Activity, zone: Zone) -> str | None:
    """The ``X-SYNCD-TZID`` to write: the activity's zone when its DTSTART is written in UTC for it."""
    value = start_value(activity, zone)
    if activity.timezone is None or not isinstance(value, datetime) or value.tzinfo is not UTC:
        return None
    return activity.timezone


def end_value(activity: Activity, end: Moment, zone: Zone) -> Moment:
    """DTEND or DUE as written: a series starting in a second pass gets the end its DTSTART (the first
    pass) needs for the same exact length, in UTC, so that every calendar gives every occurrence that length."""
    first = first_pass(activity)
    if first is None or not isinstance(end, datetime) or not isinstance(activity.start, datetime):
        return written(end, zone)
    return first.astimezone(UTC) + (end.astimezone(UTC) - activity.start.astimezone(UTC))


def instance_value(moment: Moment, activity: Activity, zone: Zone) -> Moment:
    """A RECURRENCE-ID, EXDATE or RDATE as written: in the type of DTSTART (RFC 5545), in UTC when it lies
    in a second pass, but for the series' first occurrence, which its DTSTART's wall time names."""
    assert activity.start is not None
    value = align(moment, activity.start, zone)
    if not isinstance(value, datetime) or not second_pass(value):
        return value
    # The first occurrence's is the time its DTSTART names: the first pass (written the same).
    return value.replace(fold=0) if _same(value, activity.start) else value.astimezone(UTC)


def instance_groups(moments: Iterable[Moment], activity: Activity, zone: Zone) -> list[list[Moment]]:
    """EXDATE or RDATE values as written (:func:`instance_value`), one property's worth each: a TZID
    applies to every value of its property, so those in UTC go in a property of their own."""
    values = [instance_value(m, activity, zone) for m in moments]
    utc: list[Moment] = [v for v in values if isinstance(v, datetime) and v.tzinfo is UTC]
    rest: list[Moment] = [v for v in values if not (isinstance(v, datetime) and v.tzinfo is UTC)]
    return [group for group in (rest, utc) if group]


def overrides_to_write(activity: Activity) -> tuple[Override, ...]:
    """The activity's overrides, and one that puts the first occurrence of a series starting in a second
    pass at its instant (unless it has one or is excluded)."""
    rec = activity.recurrence
    if rec is None:
        return ()
    start = activity.start
    taken = (*rec.exdates, *(o.recurrence_id for o in rec.overrides))
    if start is None or first_pass(activity) is None or any(_same(m, start) for m in taken):
        return rec.overrides
    return (Override(recurrence_id=start), *rec.overrides)


def unfold_start(
    activity: Activity, master: Component, components: Iterable[Component], reader: TimeReader
) -> tuple[Activity, datetime | None]:
    """A series as read whose DTSTART is a wall time in a repeated hour and whose first occurrence an
    override moves (syncd's form above moves it to the second pass) or an EXDATE excludes: the series
    from the second pass, each occurrence as long as calendars make the others, and the first pass, for
    :func:`refold`. Any other activity as it is, and ``None``.

    The occurrences are the same either way; only the series' own start differs, and the CRM's must not
    move an hour. A series from another client whose first occurrence is moved or excluded is read the
    same way: its start is no occurrence, and written back it is the same item."""
    start = activity.start
    rec = activity.recurrence
    if rec is None or not isinstance(start, datetime) or start.tzinfo is None:
        return activity, None
    later = start.replace(fold=1)
    if not second_pass(later):
        return activity, None
    if not any(_same(d, start) for d in rec.exdates) and not any(_moves(c, start, reader) for c in components):
        return activity, None
    length = _length(master, activity)
    if activity.is_event:
        return activity.replace(start=later, end=length(later, activity.end)), start
    return activity.replace(start=later, due=length(later, activity.due)), start


def _moves(component: Component, start: datetime, reader: TimeReader) -> bool:
    """Whether ``component`` overrides the occurrence at ``start`` and gives it another start."""
    rid = reader.moment(component["RECURRENCE-ID"], "RECURRENCE-ID")[0]
    if component.get("DTSTART") is None or not _same(rid, start):
        return False
    return not _same(reader.moment(component["DTSTART"], "DTSTART")[0], start)


def _length(master: Component, activity: Activity) -> Callable[[datetime, Moment | None], Moment | None]:
    """The end of an occurrence from its start, as calendars compute it from the master (recurring-ical-events
    subtracts DTSTART from DTEND as Python does: on the wall clock within one zone, else as instants)."""
    prop = master.get("DTEND" if activity.is_event else "DUE")
    first, last = getattr(master.get("DTSTART"), "dt", None), getattr(prop, "dt", None)
    if isinstance(first, datetime) and isinstance(last, datetime) and first.tzinfo and last.tzinfo:
        elapsed = last - first
        return lambda start, end: None if end is None else (start.astimezone(UTC) + elapsed).astimezone(start.tzinfo)
    old = activity.start
    assert isinstance(old, datetime)
    # DURATION (or no end): as long as syncd read it, in elapsed time from the start.
    return lambda start, end: end if not isinstance(end, datetime) else (
        start.astimezone(UTC) + (end.astimezone(UTC) - old.astimezone(UTC))).astimezone(start.tzinfo)


def refold(activity: Activity, first: datetime | None) -> Activity:
    """After :func:`unfold_start`: the override and EXDATE of the first occurrence (read at the first pass)
    at the series' start, as the CRM holds them, and no override when it changes nothing else."""
    rec = activity.recurrence
    start = activity.start
    if first is None or rec is None or start is None:
        return activity
    exdates = tuple(start if _same(d, first) else d for d in rec.exdates)
    overrides = []
    for override in rec.overrides:
        if not _same(override.recurrence_id, first):
            overrides.append(override)
            continue
        # A start read as None compared equal to the first pass on the wall clock: it is the second pass.
        moved = None if override.start is None or _same(override.start, start) else override.start
        own = dataclasses.replace(override, recurrence_id=start, start=moved)
        if own != Override(recurrence_id=start):
            overrides.append(own)
    return activity.replace(recurrence=dataclasses.replace(rec, exdates=exdates, overrides=tuple(overrides)))


def _same(a: Moment, b: Moment) -> bool:
    """The same instant (or day): aware times of one zone compare on the wall clock, blind to the pass."""
    if isinstance(a, datetime) and isinstance(b, datetime) and a.tzinfo is not None and b.tzinfo is not None:
        return a.astimezone(UTC) == b.astimezone(UTC)
    return type(a) is type(b) and a == b


def start_zone(component: Component, start: Moment, end_zone: str | None, reader: TimeReader) -> str | None:
    """The zone of a single item's DTSTART in UTC: ``X-SYNCD-TZID``, else the end's zone, if the start
    lies in the second pass there (see :meth:`~syncd.mapping.ical_time.TimeReader.zone_of_start`)."""
    return reader.zone_of_start(start, (x_text(component, X_TZID), end_zone))
