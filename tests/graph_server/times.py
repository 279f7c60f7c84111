"""Graph's date-time forms: dateTimeTimeZone values (IANA or Windows zone names), the
`Prefer: outlook.timezone` header, and query-string instants."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, tzinfo
from functools import cache
from typing import Any

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from .errors import GraphError, bad_request

_PREFER_TZ = re.compile(r'outlook\.timezone\s*=\s*"?([^",;]+)"?', re.I)


@cache
def zone(name: str) -> tzinfo:
    """The zone of a Graph time zone name; 400 TimeZoneNotSupportedException as the service answers."""
    if name in ("UTC", "Etc/UTC", "tzone://Microsoft/Utc", "Coordinated Universal Time"):
        return UTC
    iana = WINDOWS_TO_OLSON.get(name, name)
    try:
        return zoneinfo.ZoneInfo(iana)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'.",
        ) from err


def parse_local(text: str) -> datetime:
    """A dateTimeTimeZone's dateTime (naive, up to 7 fractional digits as Graph writes)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)(?:\.(\d{1,7}))?(Z|[+-]\d\d:\d\d)?", text.strip())
    if not match:
        raise bad_request(f"Cannot convert the literal '{text}' to the expected type 'Edm.DateTime'.")
    value = datetime.fromisoformat(match[1])
    if match[2]:
        value = value.replace(microsecond=int(match[2][:6].ljust(6, "0")))
    return value


def to_utc(value: dict[str, Any]) -> datetime:
    """An aware UTC instant from {"dateTime", "timeZone"}."""
    local = parse_local(value["dateTime"])
    return local.replace(tzinfo=zone(value.get("timeZone") or "UTC")).astimezone(UTC)


def format_local(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0"


def render(instant: datetime, zone_name: str) -> dict[str, str]:
    """{"dateTime", "timeZone"} of a UTC instant in a zone, as Graph renders it."""
    local = instant.astimezone(zone(zone_name)).replace(tzinfo=None)
    return {"dateTime": format_local(local), "timeZone": zone_name}


def preferred_zone(prefer: str | None) -> str:
    """The zone of `Prefer: outlook.timezone="..."`, UTC without it (validated)."""
    match = _PREFER_TZ.search(prefer or "")
    if not match:
        return "UTC"
    name = match[1].strip()
    zone(name)
    return name


def parse_instant(text: str, name: str) -> datetime:
    """A startDateTime/endDateTime query parameter: ISO 8601, UTC when it has no offset."""
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError as err:
        raise bad_request(f"The value '{text}' of parameter '{name}' is not a valid date time.") from err
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """Edm.DateTimeOffset as Graph writes it (7 fractional digits, Z)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0Z"
