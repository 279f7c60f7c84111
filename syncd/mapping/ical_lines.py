"""icalendar's content lines, unfolded, split and read faster when they are plain.

icalendar splits every line (``Contentline.parts``) with a loop over each character, then reads the
parameters through several passes (whitespace around delimiters, ``\\`` escapes, quotes, RFC 6868
``^``) and builds its ``Parameters`` twice: 13 µs a line, 200 µs of a phone event's 500 µs parse
(measured on the bench's phone items, icalendar 7.3.2). Almost every line a server sends is plain: a
name, parameters whose values are words or quoted text, a colon. For such a line every one of those
passes changes nothing, so :meth:`FastLine.raw_parts` reads it with one regular expression and gives
what icalendar gives (the same name, a ``Parameters`` with the same items in the same order, the same
value, which icalendar's ``parts`` then unescapes). Any other line (a backslash, ``^`` or ``%``
before the value, spaces at a delimiter, a tab or control character, a name beyond ``[A-Za-z0-9-]``,
a parameter without ``=``, a quote inside a value...) is split by icalendar's own code, which also
raises what it raises. The text is unfolded and split into lines as icalendar does it, by string
methods when that is the same (:func:`_unfolded`). tests/mapping/test_ical_lines.py holds both
readings equal on tricky lines, generated lines and texts, and the corpus.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from icalendar.parser.content_line import NEWLINE, UFOLD, Contentline, Contentlines
from icalendar.parser.parameter import Parameters, q_split
from icalendar.parser.property import unescape_backslash

#: A parameter value icalendar reads as written. Unquoted: no delimiter, quote, escape (``\\``, ``^``,
#: ``%``), control character or other whitespace than single inner spaces (icalendar strips spaces
#: beside ``;`` and ``=`` and at the ends). Quoted: no quote, escape or control character inside.
_UNQUOTED = r'[^\x00-\x20\x7f",:;=\\^%\s]+(?: +[^\x00-\x20\x7f",:;=\\^%\s]+)*'
_QUOTED = r'"[^\x00-\x1f\x7f"\\^%]*"'
_VALUES = rf"(?:{_QUOTED}|{_UNQUOTED})?(?:,(?:{_QUOTED}|{_UNQUOTED})?)*"
#: A subset of icalendar's token (``[\w.-]+``), so its name checks pass on every name this matches.
_TOKEN = r"[A-Za-z0-9-]+"
#: A plain line up to the colon that starts its value: its name, then its parameters.
_PLAIN = re.compile(rf"({_TOKEN})((?:;{_TOKEN}={_VALUES})*):")
_PARAMETER = re.compile(rf";({_TOKEN})=({_VALUES})")


class FastLine(Contentline):
    """A content line whose :meth:`raw_parts` (and so :meth:`parts`, which unescapes its value) reads a
    plain line without icalendar's per-character passes."""

    __slots__ = ()
    strict: bool  # Contentline's slot, which icalendar leaves untyped

    def raw_parts(self) -> tuple[str, Parameters, str]:
        plain = None if self.strict else _PLAIN.match(self)
        if plain is None:
            return super().raw_parts()
        name, section = plain.groups()
        return name, _parameters(section), self[plain.end() :]

    def parts(self) -> tuple[str, Parameters, str]:
        # icalendar's parts(): raw_parts() with the value unescaped, which changes nothing without a "\\".
        name, params, value = self.raw_parts()
        return name, params, unescape_backslash(value) if "\\" in value else value


def _parameters(section: str) -> Parameters:
    """``;KEY=value,...`` of a plain line as icalendar's ``Parameters`` holds them: upper-case keys,
    one value as text, several as a list, quotes removed (a later key of the same name wins, in the
    first one's place).

    Filled as the ordered dict it is: ``Parameters(items)`` runs two ``__init__`` in Python that only
    fold keys already folded here. For a line without parameters (most lines) that cost more than the
    rest of splitting it (timeit, icalendar 7.3.2: ``Parameters()`` 2.4 µs, this 0.2 µs, the whole
    ``raw_parts`` of ``SUMMARY:...`` 1.8 µs, on a loaded machine)."""
    params = _new(Parameters)
    for key, text in _PARAMETER.findall(section) if section else ():
        # A quoted value may hold ",": icalendar's own split, which keeps quoted text whole.
        values = [v[1:-1] if v.startswith('"') else v for v in q_split(text, ",")] if '"' in text else text.split(",")
        _set(params, key.upper(), values[0] if len(values) == 1 else values)
    return params


_new = OrderedDict.__new__
_set = OrderedDict.__setitem__


def content_lines(text: str) -> Contentlines:
    """``Contentlines.from_ical(text)``, its lines made :class:`FastLine`."""
    try:
        lines = Contentlines(_line(line) for line in _unfolded(text) if line)
    except Exception as exc:  # as icalendar words it, so a refused item reads the same
        raise ValueError("Expected StringType with content lines") from exc
    lines.append("")  # type: ignore[arg-type] # icalendar's end marker, skipped by its parser
    return lines


def _line(text: str) -> FastLine:
    """``FastLine(text)`` for a line already split (no LF, a ``str``): what ``Contentline.__new__`` makes
    of it, without its checks, which cost 40 % of splitting the text."""
    line = str.__new__(FastLine, text)
    line.strict = False
    return line


def _unfolded(text: str) -> list[str]:
    """``NEWLINE.split(UFOLD.sub("", text))``, icalendar's unfolding and splitting. Its expressions try a
    match at every character: 600,000 instructions for a phone's 800-character event, 29 % of its parse
    (callgrind, icalendar 7.3.2). When every line ends in CRLF and no line is empty (what servers send),
    a fold is exactly a CRLF followed by a space or a tab, and a line end exactly a CRLF: string methods
    then unfold and split the same way for some 10,000. Any other text takes icalendar's expressions."""
    if text.count("\n") == text.count("\r\n") and "\r\n\r\n" not in text:
        return text.replace("\r\n ", "").replace("\r\n\t", "").split("\r\n")
    return NEWLINE.split(UFOLD.sub("", text))
