"""iCalendar files as a CalDAV server holds them: one object resource per UID, each with its calendar's
properties and VTIMEZONEs. Read by the mapping tests and by ``bench/mapping_pull.py`` (which imports it as
``tests.ics_resources``, run from the repository's root), so that both measure the same items."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from icalendar import Calendar, Component

#: Six calendar libraries' test calendars, a folder per source (their licences: tests/data/ics/README.md).
CORPUS = Path(__file__).resolve().parent / "data" / "ics" / "corpus"


def resources(path: Path) -> Iterator[tuple[str, bytes]]:
    """The file's resources, each with a name (a file may hold several calendars)."""
    try:
        calendars = Calendar.from_ical(path.read_bytes(), multiple=True)
    except (ValueError, OverflowError):  # icalendar 7.1 overflows on a huge DURATION; later ones say ValueError
        yield path.name, path.read_bytes()  # syncd gets to say what is wrong with it
        return
    n = 0
    for calendar in calendars:
        if not isinstance(calendar, Calendar):
            yield path.name, path.read_bytes()  # not a VCALENDAR: syncd gets to say so
            return
        for resource in split(calendar):
            yield f"{path.name}#{n}", resource
            n += 1


def split(calendar: Calendar) -> Iterator[bytes]:
    """One calendar's resources, in the order their UIDs first appear."""
    groups: dict[str, list[Component]] = defaultdict(list)
    for component in calendar.subcomponents:
        if component.name in ("VEVENT", "VTODO"):
            groups[str(component.get("UID", id(component)))].append(component)
    for components in groups.values():
        single = Calendar()
        for key, value in calendar.items():
            single[key] = value
        for tz in calendar.timezones:
            single.add_component(tz)
        for component in components:
            single.add_component(component)
        yield single.to_ical()
