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

import re
import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo
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


def _samples(around: datetime) -> list[datetime]:
    """Instants every ~10 days over three years centred on ``around``, to compare two zones' offsets."""
    base = around.astimezone(UTC) - timedelta(days=548)
    return [base + timedelta(days=10 * i, hours=i % 24) for i in range(110)]


def iana_for_vtimezone(tzid: str, tz: tzinfo, around: datetime) -> str | None:
    """The IANA zone whose UTC offsets equal those of ``tz`` (built from a VTIMEZONE) near ``around``.

    Zones whose city appears in ``tzid`` are tried first, so that among the many
    zones with identical rules (Amsterdam, Berlin, Paris, ...) the one the label names is chosen.
    """
    samples = _samples(around)
    wanted = [s.astimezone(tz).utcoffset() for s in samples]
    words = {w.casefold() for w in re.findall(r"[A-Za-z]{3,}", tzid)}
    preferred = [name for city, names in _by_city().items() if city in words for name in names]
    for name in [*preferred, *sorted(_available())]:
        if not name.startswith(("posix/", "right/", "SystemV/")) and _offsets(name, samples) == wanted:
            return name
    return None


def _offsets(name: str, samples: list[datetime]) -> list[timedelta | None]:
    try:
        tz = zone(name)
    except (KeyError, zoneinfo.ZoneInfoNotFoundError):
        return []
    return [s.astimezone(tz).utcoffset() for s in samples]
