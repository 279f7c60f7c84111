"""Time zone names as calendars write them, resolved to the IANA names syncd stores.

Calendars name zones in several ways (RFC 5545 leaves TZID free-form):

* IANA names (``Europe/Amsterdam``), the norm for Google, Apple, Radicale and syncd itself;
* Windows names (``W. Europe Standard Time``) from Outlook and Exchange, mapped with the CLDR
  ``windowsZones`` table that icalendar ships (``icalendar.timezone.windows_to_olson``);
* Windows display labels (``(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna``) from older
  Outlook exports: the cities are looked up among IANA zone names and accepted only when the label's
  offset matches the zone's standard offset;
* "globally unique" vendor paths (``/mozilla.org/20050126_1/Europe/Berlin``, RFC 5545 3.2.19);
* anything else with a VTIMEZONE definition: the IANA zone whose offsets agree with it over the years
  around the item (:func:`iana_for_vtimezone`).
"""

from __future__ import annotations

import bisect
import re
import zoneinfo
from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import cache

# "tzone://Microsoft/Utc" is the id Exchange gives UTC; CLDR's Windows table does not list it.
_UTC_NAMES = frozenset(
    {"utc", "gmt", "z", "etc/utc", "etc/gmt", "utc+00:00", "(utc) coordinated universal time", "tzone://microsoft/utc"}
)
_LABEL = re.compile(r"^\(\s*(?:UTC|GMT)\s*(?:(?P<sign>[+-])(?P<h>\d{1,2}):?(?P<m>\d{2}))?\s*\)\s*(?P<cities>.+)$", re.I)


@cache
def _available() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@cache
def _by_city() -> dict[str, list[str]]:
    """Last path component of every IANA zone (``amsterdam`` -> ``Europe/Amsterdam``)."""
    index: dict[str, list[str]] = {}
    for name in sorted(_available()):
        if "/" in name and not name.startswith(("Etc/", "SystemV/", "posix/", "right/")):
            index.setdefault(name.rsplit("/", 1)[1].replace("_", " ").casefold(), []).append(name)
    return index


@cache
def _windows_zones() -> tuple[dict[str, str], dict[str, str]]:
    """The Windows -> IANA table, as given and case-folded. icalendar's copy of CLDR's table, not
    exchangelib's: icalendar is loaded anyway (it imports the table itself), while importing
    exchangelib costs ~0.8 s and is not installed without the ``exchange`` extra."""
    from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

    return dict(WINDOWS_TO_OLSON), {k.casefold(): v for k, v in WINDOWS_TO_OLSON.items()}


@cache
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zoneinfo object of an IANA name (cached; raises ``KeyError`` for an unknown name)."""
    if name not in _available() and name != "UTC":
        raise KeyError(name)
    return zoneinfo.ZoneInfo(name)


def is_iana(name: str | None) -> bool:
    return bool(name) and (name in _available() or name == "UTC")


@cache
def iana_for_tzid(tzid: str) -> str | None:
    """The IANA name a TZID (or X-WR-TIMEZONE, or Exchange zone id) stands for, or ``None``."""
    name = tzid.strip().strip('"').strip()
    if not name:
        return None
    if name.casefold() in _UTC_NAMES:
        return "UTC"
    if is_iana(name):
        return name
    windows, folded = _windows_zones()
    if name in windows:
        return windows[name]
    if name.casefold() in folded:
        return folded[name.casefold()]
    if name.startswith("/") or name.count("/") > 1:
        parts = name.strip("/").split("/")
        for first in range(len(parts)):
            candidate = "/".join(parts[first:])
            if is_iana(candidate):
                return candidate
    return _iana_for_label(name)


def _iana_for_label(label: str) -> str | None:
    """``(UTC+01:00) Amsterdam, Berlin, ...`` -> the first city that is an IANA zone with that offset."""
    match = _LABEL.match(label)
    if not match:
        return None
    offset = timedelta()
    if match["sign"]:
        offset = timedelta(hours=int(match["h"]), minutes=int(match["m"]))
        if match["sign"] == "-":
            offset = -offset
    cities = [c.strip().casefold() for c in re.split(r"[,/]| - ", match["cities"]) if c.strip()]
    for city in cities:
        for name in _by_city().get(city, []):
            if _standard_offset(zone(name)) == offset:
                return name
    return None


def _standard_offset(tz: tzinfo) -> timedelta | None:
    """The zone's offset in winter of both hemispheres' reference year (the smaller is standard time)."""
    offsets = [datetime(2025, month, 15, 12, tzinfo=tz).utcoffset() for month in (1, 7)]
    known = [o for o in offsets if o is not None]
    return min(known) if known else None


_SPAN = timedelta(days=1096)


def _samples(tz: tzinfo, around: datetime, within: tuple[datetime, datetime] | None) -> list[datetime]:
    """Local noon of every day over three years centred on ``around`` (kept ``within`` the years a
    definition describes, as far as they reach), to compare two zones' offsets: every day, so that
    transitions a week apart (Australia's first Sunday of April, Europe's last Sunday of March) tell
    zones apart; at noon, where no zone changes its clock, so that a definition with the switch at a
    slightly different hour (03:00 instead of 02:00) still matches."""
    first = around.astimezone(UTC) - _SPAN / 2
    if within is not None:
        first = max(min(first, within[1] - _SPAN), within[0])
        last = min(first + _SPAN, within[1])
    else:
        last = first + _SPAN
    day = first.date()
    return [
        datetime.combine(day + timedelta(days=i), time(12), tzinfo=tz).astimezone(UTC)
        for i in range(max(1, (last - first).days))
    ]


def iana_for_vtimezone(
    tzid: str, tz: tzinfo, around: datetime, within: tuple[datetime, datetime] | None = None
) -> str | None:
    """The IANA zone whose UTC offsets equal those of ``tz`` (built from a VTIMEZONE) near ``around``,
    compared ``within`` the years the definition describes.

    Zones whose city appears in ``tzid`` are tried first, so that among the many
    zones with identical rules (Amsterdam, Berlin, Paris, ...) the one the label names is chosen; then
    the zones Windows' own zones stand for, so that Outlook's "Customized Time Zone" with Sydney's rules
    is Australia/Sydney, not Antarctica/Macquarie.
    """
    samples = _samples(tz, around, within)
    wanted = [s.astimezone(tz).utcoffset() for s in samples]
    for name in [*_named(tzid), *_primary_zones(), *sorted(_available())]:
        if not name.startswith(("posix/", "right/", "SystemV/")) and _agrees(name, samples, wanted):
            return name
    return None


class TransitionZone(tzinfo):
    """A zone given by its transitions (naive UTC instants) and the offset from each on: what a
    VTIMEZONE says, looked up by bisection. dateutil's zone from the same definition walks each
    observance's rule from its DTSTART on every lookup (Outlook's start in 1601: 2 ms), too slow to
    compare a thousand days of a dozen definitions."""

    def __init__(self, times: list[datetime], offsets: list[timedelta], before: timedelta) -> None:
        self._times = times
        self._offsets = offsets
        self._before = before

    def _at(self, utc: datetime) -> timedelta:
        i = bisect.bisect_right(self._times, utc) - 1
        return self._offsets[i] if i >= 0 else self._before

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return self._before
        wall = dt.replace(tzinfo=None)
        return self._at(wall - self._at(wall - self._before))

    def dst(self, dt: datetime | None) -> None:
        return None

    def tzname(self, dt: datetime | None) -> None:
        return None

    def fromutc(self, dt: datetime) -> datetime:
        utc = dt.replace(tzinfo=None)
        return (utc + self._at(utc)).replace(tzinfo=self)


def named_zone_at(tzid: str, tz: tzinfo, wall: datetime) -> str | None:
    """A zone ``tzid`` names, by a city or by a label's standard offset (``(UTC-03:00) Brasília``), whose
    offset at ``wall`` (naive, on ``tz``'s clock) is ``tz``'s."""
    wanted = wall.replace(tzinfo=tz).utcoffset()
    match = _LABEL.match(tzid.strip())
    labelled: list[str] = []
    if match and match["sign"]:
        offset = timedelta(hours=int(match["h"]), minutes=int(match["m"])) * (-1 if match["sign"] == "-" else 1)
        labelled = [name for name in _primary_zones() if _standard_offset(zone(name)) == offset]
    for name in [*_named(tzid), *labelled]:
        if wall.replace(tzinfo=zone(name)).utcoffset() == wanted:
            return name
    return None


def _named(tzid: str) -> list[str]:
    words = {w.casefold() for w in re.findall(r"[A-Za-z]{3,}", tzid)}
    return [name for city, names in _by_city().items() if city in words for name in names]


@cache
def _primary_zones() -> tuple[str, ...]:
    table = _windows_zones()[0]
    return tuple(dict.fromkeys(table[key] for key in sorted(table) if is_iana(table[key])))


def _agrees(name: str, samples: list[datetime], wanted: list[timedelta | None]) -> bool:
    """Whether zone ``name`` has the ``wanted`` offsets at ``samples`` (stops at the first that differs)."""
    try:
        tz = zone(name)
    except (KeyError, zoneinfo.ZoneInfoNotFoundError):
        return False
    return all(s.astimezone(tz).utcoffset() == w for s, w in zip(samples, wanted, strict=True))
