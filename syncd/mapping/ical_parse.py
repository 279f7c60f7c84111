"""icalendar's parse of a pulled item, with each VTIMEZONE text parsed once per process.

Every item of a calendar carries the same VTIMEZONE (or the few its client writes), and parsing one is
half of icalendar's work on a phone's event and two thirds on one syncd wrote (a VTIMEZONE of twenty
years of RDATEs). This parser is icalendar's own (its parser class is made to be refined in
subclasses): it reads a VTIMEZONE whose lines it has read before as the component those lines made,
and every other line as icalendar does. The same lines always make the same component, so the result
is the one icalendar gives; a block it cannot delimit plainly (no ``END:VTIMEZONE``, another
``BEGIN:VTIMEZONE`` inside) is parsed line by line as usual. The component is shared between the
items that carry it: the read path only reads it (the write path parses its base with icalendar
itself and adds its own VTIMEZONEs).

Two more refinements of the same parser: its lines split plain lines without icalendar's loop over
each character (:mod:`syncd.mapping.ical_lines`), and a property's value type is looked up once per
name and VALUE rather than twice per line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from icalendar import Calendar, Component, Timezone
from icalendar.parser.content_line import Contentline
from icalendar.parser.ical.calendar import CalendarIcalParser
from icalendar.parser.ical.component import ComponentIcalParser
from icalendar.parser.parameter import Parameters
from icalendar.parser_tools import to_unicode
from icalendar.timezone import tzp

from syncd.mapping.ical_lines import content_lines

_BEGIN = "BEGIN:VTIMEZONE"
_END = "END:VTIMEZONE"
_BEGIN_LENGTH = len(_BEGIN)
_KEPT = 64
#: The shared components' serialization, by identity (the component is kept with it, so its id is not
#: reused while the entry lives): matching a TZID that names no zone compares the VTIMEZONE's text.
_texts: dict[int, tuple[Timezone, bytes]] = {}
_texts_lock = threading.Lock()


def parse_calendar(text: str) -> Calendar:
    """``Calendar.from_ical(text)``, each VTIMEZONE parsed once per text."""
    return _PulledCalendar.from_ical(text)


class _PulledCalendar(Calendar):
    @classmethod
    def _get_ical_parser(cls, st: str | bytes) -> ComponentIcalParser:
        return _Parser(st, Calendar._get_component_factory(), Calendar.types_factory)


class _Parser(CalendarIcalParser):
    def initialize_parsing(self) -> None:
        if not isinstance(self._data, list):  # a list: the lines of a first pass, parsed again
            self._data = content_lines(to_unicode(self._data))
        super().initialize_parsing()
        # icalendar's loop reads its lines from this iterator: a VTIMEZONE read before never reaches it.
        self._content_lines_iterator = self._known_zones_taken(self._content_lines_iterator)

    def get_factory_for_property(self, name: str, params: Parameters) -> Any:
        # icalendar asks twice per property, each time walking its type tables.
        return _factory(name, params.value)

    def _known_zones_taken(self, lines: Iterator[Contentline]) -> Iterator[Contentline]:
        """The lines, but a VTIMEZONE whose lines were read before: that component is added instead."""
        for line in lines:
            if len(line) == _BEGIN_LENGTH and line.upper() == _BEGIN:
                block = _block(line, lines)
                zone = _zone("\r\n".join(block)) if block[-1].upper() == _END else None
                if zone is None:
                    yield from block
                else:
                    self._attach(zone)
            else:
                yield line

    def _attach(self, zone: Timezone) -> None:
        # What handle_end_component does with a VTIMEZONE it has read.
        if self._stack:
            self._stack[-1].add_component(zone)
        else:
            self._components.append(zone)
        if "TZID" in zone:
            tzp.cache_timezone_component(zone)


@lru_cache(maxsize=_KEPT * 4)
def _factory(name: str, value: str | None) -> Any:
    """icalendar's value type for a property of this name and VALUE (its tables never change)."""
    return Calendar.types_factory.for_property(name, value)


def _block(first: Contentline, lines: Iterator[Contentline]) -> list[Contentline]:
    """``first`` and the lines after it up to ``END:VTIMEZONE`` (or up to another ``BEGIN:VTIMEZONE``)."""
    block = [first]
    for line in lines:
        block.append(line)
        folded = line.upper() if len(line) <= _BEGIN_LENGTH else ""
        if folded in (_END, _BEGIN):
            break
    return block


def vtimezone_text(component: Component) -> bytes:
    """``component.to_ical()``; for a VTIMEZONE read by :func:`parse_calendar`, serialized once."""
    known = _texts.get(id(component))
    if known is not None and known[0] is component:
        return known[1]
    return component.to_ical()


@lru_cache(maxsize=_KEPT)
def _zone(text: str) -> Timezone | None:
    """The VTIMEZONE these unfolded lines make, parsed by icalendar on its own; ``None`` when they make
    anything else (components that do not close in order) or do not parse: they are then parsed in
    place, line by line, as icalendar does, and fail there as they would."""
    lines = [Contentline(line) for line in text.split("\r\n")]
    try:
        made = ComponentIcalParser(lines, Calendar._get_component_factory(), Calendar.types_factory).parse()
    except Exception:  # noqa: BLE001 - parsed again in place, where icalendar raises what it raises
        return None
    if len(made) != 1 or not isinstance(made[0], Timezone) or made[0].errors:
        return None
    zone = made[0]
    serialized = zone.to_ical()
    with _texts_lock:  # passes of several bindings may parse at once
        _texts[id(zone)] = (zone, serialized)
        while len(_texts) > 4 * _KEPT:  # entries of zones the parse cache let go of, oldest first
            del _texts[next(iter(_texts))]
    return zone
