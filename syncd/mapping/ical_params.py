"""CRM text in iCalendar parameter values (an attendee's CN, an attachment's FILENAME), exactly.

RFC 5545 3.1 gives a parameter value no escapes but RFC 6868's ``^``: a quoted value is the text
between the quotes. syncd writes such values quoted (a backslash, a colon or a space at an end is then
plain text) and otherwise as the name is, so every client that follows the RFCs shows the CRM's name.

icalendar (syncd's reader, and recurring-ical-events') does not follow them: it reads ``\\,``, ``\\:``,
``\\;`` and ``\\\\`` in a parameter value as escapes, since clients that escape parameters as TEXT
(``CN="Doe\\, John"``) mean the comma. Some names also cannot be written at all: C0 controls (no
parameter value can hold them) and a CR (RFC 6868 has only "new line", read back as LF). For such a
name, and only then, the exact text also travels in ``X-SYNCD-<KEY>`` on the same property, in a form
icalendar reads as written (``%XX`` for ``%``, ``\\`` and controls). It counts only while the visible
value still reads as syncd wrote it from that text: a name a user changed in a client wins.
"""

from __future__ import annotations

import re
from typing import Any

from icalendar import vText
from icalendar.parser import Contentline, Parameters

#: The parameters syncd writes from CRM text.
TEXT_KEYS = ("CN", "FILENAME")
#: What no parameter value can hold: C0 controls but TAB, LF and CR (RFC 6868 ^n), and DEL. Written as
#: is, icalendar drops the whole property on reading, or refuses the item.
_NOT_IN_PARAM = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: What the hidden copy writes as %XX: ``%`` itself, the backslash icalendar unescapes, every control.
_HIDE = re.compile("[%\\\\\x00-\x1f\x7f]")
_UNHIDE = re.compile("%([0-9A-Fa-f]{2})")
#: What icalendar may read otherwise than written in a quoted value: a backslash (an escape to it), a
#: line end (RFC 6868 ^n reads as the platform's). Text without them skips the costly round trip.
_MAY_CHANGE = re.compile(r"[\\\r\n]")


def hidden_key(key: str) -> str:
    """The parameter holding the exact text of ``key`` when the visible value cannot."""
    return f"X-SYNCD-{key.upper()}"


class _TextParameters(Parameters):
    """Parameters whose text values are always quoted: unquoted, icalendar writes a trailing
    backslash bare (``CN=a\\:mailto:...``) and its reader then takes the address into the name, and a
    space at either end of an unquoted value is dropped on reading."""

    # mypy types the base tuple by its length, so a longer one reads as another type
    always_quoted = (  # type: ignore[assignment]
        *Parameters.always_quoted, *TEXT_KEYS, *(hidden_key(k) for k in TEXT_KEYS)
    )


def set_text_param(value: Any, key: str, text: str | None) -> None:
    """Set parameter ``key`` (one of :data:`TEXT_KEYS`) of a property value to CRM text, or remove it
    for ``None`` or empty; see the module documentation for the hidden copy."""
    if not isinstance(value.params, _TextParameters):
        value.params = _TextParameters(value.params)
    value.params.pop(key, None)
    value.params.pop(hidden_key(key), None)
    if not text:
        return
    shown = _NOT_IN_PARAM.sub("", text)
    if shown:
        value.params[key] = shown
    if _read_back(key, shown) != text:
        value.params[hidden_key(key)] = _HIDE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def text_param(value: Any, *keys: str) -> str | None:
    """The text of the first of ``keys`` a property value has (a later key is another client's
    name for the same thing, like ``X-FILENAME``), exact where syncd wrote it; ``None`` if none."""
    params = getattr(value, "params", None) or {}
    for key in keys:
        shown = _joined(params.get(key))
        hidden = params.get(hidden_key(key))
        if isinstance(hidden, str):
            exact = _UNHIDE.sub(lambda m: chr(int(m.group(1), 16)), hidden)
            if exact and _read_back(key, _NOT_IN_PARAM.sub("", exact)) == shown:
                return exact
        if shown:
            return shown
    return None


def _joined(value: Any) -> str:
    """A parameter value as text: a client's unquoted ``CN=Doe, John`` reads as a list of two."""
    if value is None:
        return ""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _read_back(key: str, shown: str) -> str:
    """What icalendar reads from ``shown`` written as parameter ``key`` by syncd: the same line through
    its own writer and reader, so a future icalendar that reads values literally needs no hidden copy."""
    if not _MAY_CHANGE.search(shown):
        return shown
    line = Contentline.from_parts("X", _TextParameters({key: shown}), vText(""))
    return _joined(line.parts()[1].get(key))
