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
each character (:mod:`syncd.mapping.ical_lines`), and a property of an ordinary name (not CATEGORIES,
FREEBUSY or RDATE, which icalendar reads its own way) is read in one step (:meth:`_Parser.handle_property`):
its value type looked up once per name and VALUE (icalendar walks its type tables twice per line), its
value parsed by icalendar's own value class, its value object made once (icalendar's parser makes each
twice, or builds parameters in it only to replace them: :func:`_made`), and the property added as
``Component.add(name, value, encode=False)`` adds it, without that method's case-folding and type
checks, which do nothing to a value of these classes (no ``datetime``, no ``list``). A value that does
not parse, and every other property, takes icalendar's own path. With the cheaper parameters and
unescaping of :mod:`.ical_lines`, a phone's event parses in 41 % of the instructions it took through
icalendar's handling (0.53 million against 1.29; one syncd wrote 0.83 against 1.86; callgrind of the
bench's items, icalendar 7.3.2). tests/mapping/test_ical_fast_read.py holds this parse equal to
icalendar's, and the items read from it equal to those read from icalendar's parse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from icalendar import Calendar, Component, Timezone
from icalendar.parser.content_line import Contentline
from icalendar.parser.ical.calendar import CalendarIcalParser
from icalendar.parser.ical.component import ComponentIcalParser
from icalendar.parser.parameter import Parameters
from icalendar.parser_tools import DEFAULT_ENCODING, to_unicode
from icalendar.prop import vCalAddress, vDDDTypes, vInline, vText, vUnknown, vUri
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

    def handle_property(self, name: str, params: Parameters, vals: str, line: Contentline) -> None:
        """icalendar's ``handle_property`` and ``parse_and_add_property`` in one, for an ordinary property."""
        value_type = _get(params, "VALUE")
        if not self._stack or name in _OWN_WAY or not name.isascii() or not (
                value_type is None or type(value_type) is str):
            # No component yet, a property icalendar splits its own way, a name that upper() may change
            # again (icalendar folds it twice), a VALUE list (icalendar fails on it): its own path.
            super().handle_property(name, params, vals, line)
            return
        factory, from_line = _reading(name, None if value_type is None else value_type.upper())
        if from_line is not None:  # RFC 7265 UNKNOWN: the value as written, not unescaped
            vals = from_line(line)
        tzid = _get(params, "TZID") if params and name in self.datetime_names else None
        if factory in _TEXTS and not tzid:
            # from_ical(vals) is cls(vals): the text, the default encoding and a Parameters replaced below.
            prop = _new_str(factory, vals)
            prop.encoding = DEFAULT_ENCODING
        else:
            try:
                parsed = factory.from_ical(vals, tzid) if tzid else factory.from_ical(vals)
            except (ValueError, TypeError) as exc:
                self.handle_property_parse_error(exc, name, params, vals, line)
                return
            prop = _made(factory, parsed)
        prop.params = params
        component = self._stack[-1]
        if isinstance(prop, datetime | list):  # no class of icalendar's is; add() treats them apart
            component.add(name, prop, encode=False)
            return
        # Component.add(name, prop, encode=False): a second value of a name makes (or extends) a list.
        before = _get(component, name, _ABSENT)
        if before is _ABSENT:
            _set(component, name, prop)
        elif isinstance(before, list):
            before.append(prop)
            _set(component, name, before)
        else:
            _set(component, name, [before, prop])

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


@lru_cache(maxsize=_KEPT * 4)
def _reading(name: str, value: str | None) -> tuple[Any, Callable[[Contentline], str] | None]:
    """The value type, and its reading of the whole line when it reads the value as written."""
    factory = _factory(name, value)
    return factory, getattr(factory, "get_value_from_content_line", None)


#: Value classes whose ``from_ical`` is ``cls(value)`` and whose instances hold nothing but their text,
#: encoding (the default) and parameters: icalendar's parser then makes a second, equal instance of the
#: first (``factory(parsed)``) only to give it the line's parameters (addresses, URIs; text too where
#: :data:`_TEXTS` does not take it). Each copy costs as much as the parse of its value (``vText(v)``
#: against ``vText.from_ical(v)``: 1.1 to 1, timeit, icalendar 7.3.2), mostly in building a
#: ``Parameters`` that is thrown away.
_SELF_MADE = frozenset({vText, vCalAddress, vUri, vUnknown, vInline})


def _plain_text(cls: type) -> bool:
    """Whether ``cls(text)`` holds the text, the default encoding and new parameters, and nothing else."""
    made = cls("x")
    return (getattr(cls, "__slots__", None) == ("encoding", "params") and not hasattr(made, "__dict__")
            and made.encoding == DEFAULT_ENCODING and made.params == {})


#: The text classes (TEXT properties, X-properties), made as their ``from_ical`` makes them without
#: going through it: that constructor builds a ``Parameters`` only for the parser to replace it, 3/4 of
#: what it costs (timeit, icalendar 7.3.2), and a phone's event has six such properties. Checked once:
#: a class that holds anything else goes through ``from_ical``.
_TEXTS = frozenset(cls for cls in (vText, vUnknown) if _plain_text(cls))
_new_str = str.__new__
#: What ``vDDDTypes(value)`` holds besides the parameters it builds (which the parser then replaces).
_DDD_STATE = set(vars(vDDDTypes(datetime(2000, 1, 1)))) == {"dt", "params"}
_ONE_TIME = frozenset({datetime, date, timedelta, time})


def _made(factory: Any, parsed: Any) -> Any:
    """``factory(parsed)``, the parser's value object, whose parameters it then sets.

    For the classes of :data:`_SELF_MADE`, that is the instance ``from_ical`` made. For a date, date-time,
    duration or time (DTSTART, DTEND, DTSTAMP, ...), ``vDDDTypes(value)`` stores the value and builds
    parameters from it (VALUE=DATE, a TZID looked up among equivalent zones) only for the parser to
    replace them, at more than the parse of the value costs (``vDDDTypes(dt)`` against
    ``vDDDTypes.from_ical`` of a UTC date-time: 1.6 to 1, this: 0.14; timeit, icalendar 7.3.2). The
    instance is made with the value alone while ``vDDDTypes`` holds nothing else (checked once, above);
    a period (a tuple, which ``__init__`` may rewrite) is made by ``vDDDTypes`` itself."""
    if type(parsed) is factory and factory in _SELF_MADE:
        return parsed
    if factory is vDDDTypes and _DDD_STATE and type(parsed) in _ONE_TIME:
        made = _new_object(vDDDTypes)
        made.dt = parsed
        return made
    return factory(parsed)


_new_object = object.__new__
#: Properties icalendar's ``handle_property`` reads apart (a list of categories, of periods, an empty RDATE).
_OWN_WAY = frozenset({"CATEGORIES", "FREEBUSY", "RDATE"})
#: A component's and a Parameters' own mapping, under icalendar's case-folding methods: the names the
#: parser hands on are upper case already, as CaselessDict stores them.
_get = OrderedDict.get
_set = OrderedDict.__setitem__
_ABSENT = object()


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
