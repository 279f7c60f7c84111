"""Dates and times of one iCalendar object: reading them into syncd's conventions, writing them back.

Read rules (see ``syncd.model`` for the domain's conventions):

* ``VALUE=DATE`` -> ``date`` (all-day);
* UTC (``...Z``) -> aware UTC, no display zone (but a single item's start syncd wrote in UTC because it
  lies in a repeated hour's second pass: :meth:`TimeReader.zone_of_start`);
* ``TZID=...`` -> the wall-clock time in the IANA zone the TZID stands for
  (:mod:`syncd.mapping.timezones`); a TZID no table knows is matched through the object's own VTIMEZONE;
  if even that fails the TZID and its VTIMEZONE are kept (:attr:`TimeReader.kept`) and the times read on
  that zone's clock, so that a weekday rule in it never moves;
* floating (no zone) -> the calendar's ``X-WR-TIMEZONE`` if it names a zone (Google), else the owner's
  zone.

Written times use the activity's zone as TZID (UTC with ``Z`` when the activity has none, or when the
time lies in the second pass of a repeated hour, which a TZID cannot name: :func:`written` and
:mod:`syncd.mapping.ical_repeated_hour`); every IANA TZID used gets a VTIMEZONE generated from zoneinfo,
a kept zone its own definition (also when only ``X-SYNCD-TZID`` names it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache, lru_cache
from typing import Any

import structlog
from icalendar import Calendar, Component, Timezone

from syncd.errors import ItemError
from syncd.mapping import timezones
from syncd.mapping.ical_parse import vtimezone_text
from syncd.mapping.ical_props import X_TZID
from syncd.model import Activity, Moment

log = structlog.get_logger(__name__)

Zone = str | tzinfo | None
"""A zone to show times in: an IANA name, a zone built from a kept VTIMEZONE, or ``None`` (UTC)."""


@cache
def kept_zone(definition: str) -> tzinfo:
    """The zone a kept VTIMEZONE (:attr:`syncd.model.Activity.timezone_definition`) defines; one object
    per definition, so that times in it compare and convert as times in one zone."""
    component = Timezone.from_ical(definition)
    return KeptZone(str(component["TZID"]), _custom_zone(definition.encode("utf-8")))


class KeptZone(tzinfo):
    """A calendar's own zone: dateutil's zone from its VTIMEZONE, which reads wall times right (also a
    repeated hour, by ``fold``), with a conversion from UTC that does not assume the daylight offset is
    the larger one. dateutil's does, and puts 19:00Z an hour before a clock set back from +12:00 to
    +10:00 at 05:00 instead of 07:00."""

    def __init__(self, tzid: str, rules: tzinfo) -> None:
        self.zone = tzid  # icalendar writes this as the TZID
        self._rules = rules

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return self._rules.utcoffset(dt)

    def dst(self, dt: datetime | None) -> timedelta | None:
        return self._rules.dst(dt)

    def tzname(self, dt: datetime | None) -> str | None:
        return self._rules.tzname(dt)

    def fromutc(self, dt: datetime) -> datetime:
        utc = dt.replace(tzinfo=None)
        # The offsets in effect within a day of the instant (a zone changes its clock at most once in a
        # day); of the wall times they give, the one that reads back as this instant, the first pass of
        # a repeated hour before the second.
        nearby = dict.fromkeys(self._rules.utcoffset(utc + timedelta(hours=h)) for h in (-14, 0, 14))
        for offset in nearby:
            if offset is None:
                continue
            for fold in (0, 1):
                wall = (utc + offset).replace(fold=fold)
                if self._rules.utcoffset(wall) == offset:
                    return wall.replace(tzinfo=self)
        return (utc + (self._rules.utcoffset(utc) or timedelta())).replace(tzinfo=self)

    def __repr__(self) -> str:
        return f"KeptZone({self.zone!r})"


def activity_zone(activity: Activity) -> Zone:
    """The zone an activity's times are shown in: its own definition when it keeps one, else its IANA name."""
    if activity.timezone_definition is not None:
        return kept_zone(activity.timezone_definition)
    return activity.timezone


def zone_info(zone: Zone) -> tzinfo:
    if zone is None or zone == "UTC":
        return UTC
    return zone if isinstance(zone, tzinfo) else timezones.zone(zone)


@dataclass
class TimeReader:
    """Reads the times of one calendar object; remembers which zone the master's times were in."""

    calendar: Calendar
    item: str
    floating_zone: str
    _vtimezones: dict[str, Component] = field(default_factory=dict)
    series: bool = False
    """Whether the object recurs: a zone that only agrees with a definition at one time is then no match."""
    kept: dict[str, str] = field(default_factory=dict)
    """TZIDs whose rules no IANA zone follows, with their VTIMEZONE text: times in them stay on that clock."""

    def __post_init__(self) -> None:
        for vtz in self.calendar.walk("VTIMEZONE"):
            tzid = vtz.get("TZID")
            if tzid:
                self._vtimezones[str(tzid)] = vtz

    def zone(self, name: str | None) -> Zone:
        """The zone a name :meth:`moment` gave stands for (a kept TZID: its own definition)."""
        return kept_zone(self.kept[name]) if name in self.kept else name

    def moment(self, value: Any, prop: str) -> tuple[Moment, str | None]:
        """A DTSTART-like value as (moment, zone name or ``None``); ``None`` zone means UTC or date.
        The name is an IANA name, or a TZID :attr:`kept` with its definition."""
        dt = getattr(value, "dt", None)
        if isinstance(dt, datetime):
            params = getattr(value, "params", {})
            return self._datetime(dt, params.get("TZID"), prop)
        if isinstance(dt, date):
            return dt, None
        raise ItemError(self.item, prop, "is not a valid date or date-time")

    def zone_of_start(self, start: Moment, names: Iterable[str | None]) -> str | None:
        """The zone of a single item's UTC DTSTART: the first of ``names`` (syncd's ``X-SYNCD-TZID``, the
        end's TZID) in whose repeated hour's second pass it lies, since a TZID cannot say that time and
        syncd writes it in UTC (:mod:`syncd.mapping.ical_repeated_hour`). ``None`` otherwise: any other UTC
        start is read as UTC, as the item says; a series' rule runs in its DTSTART's zone, which is UTC."""
        if self.series or not isinstance(start, datetime) or start.tzinfo is None:
            return None
        for tzid in names:
            name = self._named(tzid, start) if tzid else None
            if name is not None and second_pass(start.astimezone(zone_info(self.zone(name)))):
                return name
        return None

    def _named(self, tzid: str, instant: datetime) -> str | None:
        """An IANA name or a kept TZID for ``tzid``; ``None`` for one that neither names nor defines a zone
        (a hidden carrier is no reason to refuse the item)."""
        try:
            name = self._iana(tzid, instant.astimezone(UTC).replace(tzinfo=None), X_TZID)
        except ItemError:
            return None
        if name is None:
            self._keep(tzid, instant.astimezone(UTC).replace(tzinfo=None))
            return tzid
        return name

    def _datetime(self, dt: datetime, tzid: str | None, prop: str) -> tuple[datetime, str | None]:
        wall = dt.replace(tzinfo=None)
        if tzid:
            name = self._iana(str(tzid), wall, prop)
            if name is None:
                return self._keep(str(tzid), wall), str(tzid)
        elif dt.tzinfo is not None:
            return dt.astimezone(UTC), None
        else:
            name = self.floating_zone
        if name == "UTC":
            return wall.replace(tzinfo=UTC), None
        # A wall time in the spring-forward gap names the instant at the offset before it (RFC 5545 3.3.5),
        # kept as the wall time that exists: 02:30 on the night clocks go from 02:00 to 03:00 is 03:30.
        # Every calendar gives that instant back as 03:30, which must then be no change.
        tz = timezones.zone(name)
        return wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz), name

    def _iana(self, tzid: str, wall: datetime, prop: str) -> str | None:
        name = timezones.iana_for_tzid(tzid)
        if name is not None:
            return name
        vtz = self._vtimezones.get(tzid)
        if vtz is None:
            raise ItemError(self.item, prop, f"time zone {tzid!r} is neither known nor defined by a VTIMEZONE")
        name = _match_vtimezone(tzid, vtimezone_text(vtz), wall.year)
        if name is None and not self.series:
            # Old Outlook rules for "Canberra, Melbourne, Sydney" (before Australia's 2008 change), or
            # Windows' rule of one year for "(UTC-03:00) Brasília": a zone the name gives where it agrees
            # at this time, which is all a single event needs.
            name = timezones.named_zone_at(tzid, _custom_zone(vtimezone_text(vtz)), wall)
        return name

    def _keep(self, tzid: str, wall: datetime) -> datetime:
        definition = vtimezone_text(self._vtimezones[tzid]).decode("utf-8")
        if tzid not in self.kept:
            log.info("time zone matches no IANA zone; its definition is kept", item=self.item, tzid=tzid)
        self.kept[tzid] = definition
        tz = kept_zone(definition)
        # As for an IANA zone above: a wall time in a gap is the one that exists at that instant.
        return wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


@cache
def _custom_zone(vtimezone: bytes) -> tzinfo:
    # Built without icalendar's process-wide TZID cache: two objects may define one TZID differently.
    component = Timezone.from_ical(vtimezone)
    if not isinstance(component, Timezone):  # icalendar types from_ical as any Component
        raise ValueError("not a VTIMEZONE")
    return component.to_tz(lookup_tzid=False)


@cache
def _match_vtimezone(tzid: str, vtimezone: bytes, year: int) -> str | None:
    # Compared where the definition has rules: before its first onset a VTIMEZONE says nothing (icalendar
    # then guesses an offset), and a definition that lists its changes year by year says nothing of the
    # years after the last one it lists, unless the item lies there.
    around = datetime(year, 7, 1, tzinfo=UTC)
    first, last = _onsets(vtimezone)
    within = (first, max(last, min(around + timedelta(days=366), _OPEN_END)))
    # icalendar lists a definition's transitions up to 2038; later years need dateutil's slow zone.
    tz = _transitions(vtimezone) if year < 2036 else _custom_zone(vtimezone)
    return timezones.iana_for_vtimezone(tzid, tz, around, within)


def _transitions(vtimezone: bytes) -> tzinfo:
    """The definition as a :class:`~syncd.mapping.timezones.TransitionZone`."""
    component = Timezone.from_ical(vtimezone)
    if not isinstance(component, Timezone):
        raise ValueError("not a VTIMEZONE")
    times, info = component.get_transitions()
    offsets = [offset for offset, _, _ in info]
    # Before its first onset a definition says nothing; the comparison does not look there.
    return timezones.TransitionZone(times, offsets, offsets[0] if offsets else timedelta())


_OPEN_END = datetime(9997, 1, 1, tzinfo=UTC)


def _onsets(vtimezone: bytes) -> tuple[datetime, datetime]:
    """The span a VTIMEZONE's observances describe: from its first onset (a year later for rules, see
    below) to its last one (a rule without UNTIL runs on)."""
    onsets: list[datetime] = []
    open_ended = ruled = False
    for observance in Timezone.from_ical(vtimezone).subcomponents:
        start = getattr(observance.get("DTSTART"), "dt", None)
        if not isinstance(start, date):
            continue
        onsets.append(_day(start))
        rdates = observance.get("RDATE", [])
        for rdate in rdates if isinstance(rdates, list) else [rdates]:
            onsets += [_day(v.dt) for v in getattr(rdate, "dts", []) if isinstance(v.dt, date)]
        rule = observance.get("RRULE")
        if rule is not None:
            ruled = True
            until = rule.get("UNTIL")
            if until and isinstance(until[0], date):
                onsets.append(_day(until[0]))
            else:
                open_ended = True
    if not onsets:
        return datetime(1, 1, 1, tzinfo=UTC), _OPEN_END
    last = _OPEN_END if open_ended else max(onsets)
    # Outlook starts the observances of its rules on one day (DTSTART:20240101T...): the offset is right
    # only after each rule has had its first turn, a year later.
    first = min(onsets) + timedelta(days=366) if ruled else min(onsets)
    return min(first, last), last


def _day(value: date) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def in_zone(moment: Moment, zone: Zone) -> Moment:
    """``moment`` as it is written: dates as they are, times in the zone (UTC when ``None``)."""
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None:
        raise ValueError("naive datetime in an activity")
    return moment.astimezone(zone_info(zone))


def second_pass(moment: Moment) -> bool:
    """Whether ``moment`` is the second pass of a repeated hour (a clock set back: ``fold=1`` where it
    matters), which a wall-clock reading alone cannot tell from the first."""
    if not isinstance(moment, datetime) or not moment.fold or moment.tzinfo is None:
        return False
    return moment.utcoffset() != moment.replace(fold=0).utcoffset()


def written(moment: Moment, zone: Zone) -> Moment:
    """``moment`` as a DTEND, DUE or a single item's DTSTART is written: as :func:`in_zone`, but the second
    pass of a repeated hour in UTC, since a TZID wall time there names the first pass (RFC 5545 3.3.5)
    and would be an hour early."""
    local = in_zone(moment, zone)
    return local.astimezone(UTC) if isinstance(local, datetime) and second_pass(local) else local


def before(a: Moment, b: Moment) -> bool:
    """``a`` is earlier than ``b``: date-times as instants (Python compares two times of one zone on the
    wall clock, which puts 02:15 of a clock's second pass after 02:45 of its first), dates as days; a date
    and a date-time are not compared."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        if a.tzinfo is not None and b.tzinfo is not None:
            return a.astimezone(UTC) < b.astimezone(UTC)
        return a < b
    if not isinstance(a, datetime) and not isinstance(b, datetime):
        return a < b
    return False


def align(moment: Moment, like: Moment, zone: Zone) -> Moment:
    """``moment`` in the value type of ``like`` (EXDATE and RECURRENCE-ID follow DTSTART, RFC 5545)."""
    if isinstance(like, datetime):
        if isinstance(moment, datetime):
            return in_zone(moment, zone)
        local = in_zone(like, zone)
        assert isinstance(local, datetime)
        return datetime.combine(moment, local.timetz().replace(tzinfo=None), tzinfo=local.tzinfo)
    if isinstance(moment, datetime):
        local_moment = in_zone(moment, zone)
        assert isinstance(local_moment, datetime)
        return local_moment.date()
    return moment


def add_duration(start: Moment, duration: timedelta) -> Moment:
    """``start + duration`` with RFC 5545 3.3.6 semantics: days are nominal (wall-clock), the rest exact."""
    if not isinstance(start, datetime):
        return start + timedelta(days=duration.days)
    days = timedelta(days=duration.days)
    rest = duration - days
    # Aware arithmetic in one zone keeps the wall clock, but drops the pass (fold) of a repeated hour.
    wall = start + days if days else start
    return (wall.astimezone(UTC) + rest).astimezone(wall.tzinfo)


def span(start: Moment, end: Moment | None, all_day: bool) -> timedelta:
    """The length of an activity, as the difference to add to an occurrence's start."""
    if end is None:
        return timedelta(days=1) if all_day else timedelta()
    if all_day and end == start:
        return timedelta(days=1)
    if isinstance(start, datetime) and isinstance(end, datetime):
        if second_pass(start) or second_pass(end):
            # Wall-clock lengths cannot tell the passes of a repeated hour apart: 01:30 to 02:30 in the
            # second pass lasts two hours, as the UTC end syncd writes for it also says (RFC 5545 3.3.5).
            return end.astimezone(UTC) - start.astimezone(UTC)
        return end - start
    if not isinstance(start, datetime) and not isinstance(end, datetime):
        return end - start
    raise ValueError("start and end are of different types")


def add_timezones(calendar: Calendar, moments: list[Moment], kept: tuple[str, str] | None = None) -> None:
    """Add a VTIMEZONE for every TZID used, covering the years the object's times fall in; the ``kept``
    (TZID, VTIMEZONE text) is written as it was read."""
    times = [m for m in moments if isinstance(m, datetime)]
    if not times:
        return
    spans = _year_spans(sorted({t.year for t in times}))
    position = len(calendar.timezones)
    missing = set(calendar.get_missing_tzids())
    if kept is not None and kept[0] not in {str(tz.get("TZID")) for tz in calendar.walk("VTIMEZONE")}:
        missing.add(kept[0])  # an X-SYNCD-TZID (beside a DTSTART in UTC) may be all that names it
    for tzid in sorted(missing):
        if kept is not None and tzid == kept[0]:
            vtimezone: Component | None = Timezone.from_ical(kept[1])
        else:
            vtimezone = _merged_vtimezone(tzid, spans)
        if vtimezone is not None:  # a zone icalendar cannot describe is left out, as it does itself
            calendar.subcomponents.insert(position, vtimezone)
            position += 1


def _year_spans(years: list[int]) -> tuple[tuple[date, date], ...]:
    """The years to describe, as few ranges as fit: a task due 9999-12-31 (a CRM's "never") beside a
    start this year needs two short ranges, not eight thousand years of transitions (a 266 KB item)."""
    spans: list[list[int]] = []
    for year in years:
        first, last = max(year - 1, 1), min(year + 2, 9999)
        if spans and first <= spans[-1][1] + 20:
            spans[-1][1] = max(spans[-1][1], last)
        else:
            spans.append([first, last])
    if len(spans) == 1:
        # One range of at least 20 years, as before: a series' later occurrences keep their observances.
        spans[0][1] = min(max(spans[0][1], spans[0][0] + 20), 9999)
    # date(10000, 1, 1) does not exist.
    return tuple((date(first, 1, 1), date(last, 1, 1) if last < 9999 else _LAST_DAY) for first, last in spans)


_LAST_DAY = date(9999, 12, 31)


def _merged_vtimezone(tzid: str, spans: tuple[tuple[date, date], ...]) -> Timezone | None:
    """One VTIMEZONE (RFC 5545 allows one per TZID) holding the observances of every range."""
    parts = [_vtimezone(tzid, first, last) for first, last in spans]
    found = [part for part in parts if part is not None]
    if len(found) <= 1:
        return found[0] if found else None
    merged = Timezone()
    merged.add("TZID", tzid)
    seen: set[bytes] = set()
    for part in found:
        for observance in part.subcomponents:
            text = observance.to_ical()
            if text not in seen:
                seen.add(text)
                merged.add_component(observance)
    return merged


@lru_cache(maxsize=128)
def _vtimezone(tzid: str, first: date, last: date) -> Timezone | None:
    """The VTIMEZONE of ``tzid`` over [first, last). Building one walks decades of transitions (~4 ms),
    and a push writes the same few zones thousands of times; the component is shared read-only
    (only serialized) between the calendars it is inserted into."""
    for _ in range(12):
        try:
            return Timezone.from_tzid(tzid, first_date=first, last_date=last)
        except ValueError:
            return None
        except OverflowError:
            # icalendar looks past the last date for the next change; in 9999 there is no room for that.
            last -= timedelta(days=31)
    return None
