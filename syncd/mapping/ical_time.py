"""Dates and times of one iCalendar object: reading them into syncd's conventions, writing them back.

Read rules (see ``syncd.model`` for the domain's conventions):

* ``VALUE=DATE`` -> ``date`` (all-day);
* UTC (``...Z``) -> aware UTC, no display zone;
* ``TZID=...`` -> the wall-clock time in the IANA zone the TZID stands for
  (:mod:`syncd.mapping.timezones`); a TZID no table knows is matched through the object's own VTIMEZONE;
  if even that fails the instant is kept in UTC and a warning logged (a recurring series may then drift
  by the DST offset, which the warning says);
* floating (no zone) -> the calendar's ``X-WR-TIMEZONE`` if it names a zone (Google), else the owner's
  zone.

Written times use the activity's IANA zone as TZID (UTC with ``Z`` when the activity has none); every
TZID used gets a VTIMEZONE generated from zoneinfo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache, lru_cache
from typing import Any

import structlog
from icalendar import Calendar, Component, Timezone

from syncd.errors import ItemError
from syncd.mapping import timezones
from syncd.model import Moment

log = structlog.get_logger(__name__)


@dataclass
class TimeReader:
    """Reads the times of one calendar object; remembers which zone the master's times were in."""

    calendar: Calendar
    item: str
    floating_zone: str
    _vtimezones: dict[str, Component] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for vtz in self.calendar.walk("VTIMEZONE"):
            tzid = vtz.get("TZID")
            if tzid:
                self._vtimezones[str(tzid)] = vtz

    def moment(self, value: Any, prop: str) -> tuple[Moment, str | None]:
        """A DTSTART-like value as (moment, IANA zone or ``None``); ``None`` zone means UTC or date."""
        dt = getattr(value, "dt", None)
        if isinstance(dt, datetime):
            params = getattr(value, "params", {})
            return self._datetime(dt, params.get("TZID"), prop)
        if isinstance(dt, date):
            return dt, None
        raise ItemError(self.item, prop, "is not a valid date or date-time")

    def _datetime(self, dt: datetime, tzid: str | None, prop: str) -> tuple[datetime, str | None]:
        wall = dt.replace(tzinfo=None)
        if tzid:
            name = self._iana(str(tzid), wall, prop)
            if name is None:
                return self._unmatched(str(tzid), wall, prop), None
        elif dt.tzinfo is not None:
            return dt.astimezone(UTC), None
        else:
            name = self.floating_zone
        if name == "UTC":
            return wall.replace(tzinfo=UTC), None
        return wall.replace(tzinfo=timezones.zone(name)), name

    def _iana(self, tzid: str, wall: datetime, prop: str) -> str | None:
        name = timezones.iana_for_tzid(tzid)
        if name is not None:
            return name
        vtz = self._vtimezones.get(tzid)
        if vtz is None:
            raise ItemError(self.item, prop, f"time zone {tzid!r} is neither known nor defined by a VTIMEZONE")
        return _match_vtimezone(tzid, vtz.to_ical(), wall.year)

    def _unmatched(self, tzid: str, wall: datetime, prop: str) -> datetime:
        custom = _custom_zone(self._vtimezones[tzid].to_ical())
        log.warning(
            "time zone matches no IANA zone; kept as UTC, a recurring series may shift by the DST offset",
            item=self.item,
            prop=prop,
            tzid=tzid,
        )
        return wall.replace(tzinfo=custom).astimezone(UTC)


@cache
def _custom_zone(vtimezone: bytes) -> tzinfo:
    # Built without icalendar's process-wide TZID cache: two objects may define one TZID differently.
    component = Timezone.from_ical(vtimezone)
    if not isinstance(component, Timezone):  # icalendar types from_ical as any Component
        raise ValueError("not a VTIMEZONE")
    return component.to_tz(lookup_tzid=False)


@cache
def _match_vtimezone(tzid: str, vtimezone: bytes, year: int) -> str | None:
    return timezones.iana_for_vtimezone(tzid, _custom_zone(vtimezone), datetime(year, 7, 1, tzinfo=UTC))


def in_zone(moment: Moment, zone: str | None) -> Moment:
    """``moment`` as it is written: dates as they are, times in the IANA zone (UTC when ``None``)."""
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None:
        raise ValueError("naive datetime in an activity")
    if zone is None or zone == "UTC":
        return moment.astimezone(UTC)
    return moment.astimezone(timezones.zone(zone))


def align(moment: Moment, like: Moment, zone: str | None) -> Moment:
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
    wall = start + days  # aware arithmetic in one zone keeps the wall clock
    return (wall.astimezone(UTC) + rest).astimezone(wall.tzinfo)


def span(start: Moment, end: Moment | None, all_day: bool) -> timedelta:
    """The length of an activity, as the difference to add to an occurrence's start."""
    if end is None:
        return timedelta(days=1) if all_day else timedelta()
    if all_day and end == start:
        return timedelta(days=1)
    if isinstance(start, datetime) and isinstance(end, datetime):
        return end - start
    if not isinstance(start, datetime) and not isinstance(end, datetime):
        return end - start
    raise ValueError("start and end are of different types")


def add_timezones(calendar: Calendar, moments: list[Moment]) -> None:
    """Add a VTIMEZONE for every TZID used, covering the years the object's times fall in."""
    times = [m for m in moments if isinstance(m, datetime)]
    if not times:
        return
    spans = _year_spans(sorted({t.year for t in times}))
    position = len(calendar.timezones)
    for tzid in sorted(calendar.get_missing_tzids()):
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
