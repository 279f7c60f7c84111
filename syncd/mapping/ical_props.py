"""The X-properties syncd keeps on calendar items, and reading them back as text.

icalendar unescapes TEXT values only for properties it knows; X-properties arrive raw (RFC 5545 3.3.11
escaping still applied), so :func:`x_text` undoes the escaping here.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from syncd.mapping.identity import X_ID, X_KIND, X_URL

X_STATUS = "X-SYNCD-STATUS"
X_TYPE = "X-SYNCD-TYPE"
X_PRIORITY = "X-SYNCD-PRIORITY"
X_DIRECTION = "X-SYNCD-DIRECTION"
X_PLACE = "X-SYNCD-PLACE"
X_PROJECT = "X-SYNCD-PROJECT"
X_CLOSE_REASON = "X-SYNCD-CLOSE-REASON"
X_TASK_END = "X-SYNCD-END"
"""A task's end: VTODO has no DTEND, and the CRM's value must survive a round trip."""
X_TZID = "X-SYNCD-TZID"
"""The zone of a DTSTART written in UTC because a TZID cannot name it (:mod:`.ical_repeated_hour`)."""
X_PARTICIPANT = "X-SYNCD-PARTICIPANT"
X_REGARDING = "X-SYNCD-REGARDING"
X_EXTRA = "X-SYNCD-EXTRA"
"""The CRM's own fields (``Activity.extra``) as one JSON object; never shown in the description."""
X_CDO_BUSY = "X-MICROSOFT-CDO-BUSYSTATUS"
"""Outlook's free/busy of an event: what TRANSP cannot say (tentative, out of office)."""
#: Parameter on ATTENDEE naming the CRM participant kind (user/contact/account/external).
P_KIND = "X-SYNCD-KIND"

__all__ = [
    "P_KIND",
    "X_CDO_BUSY",
    "X_CLOSE_REASON",
    "X_DIRECTION",
    "X_EXTRA",
    "X_ID",
    "X_KIND",
    "X_PARTICIPANT",
    "X_PLACE",
    "X_PRIORITY",
    "X_PROJECT",
    "X_REGARDING",
    "X_STATUS",
    "X_TYPE",
    "X_TZID",
    "X_URL",
    "all_values",
    "lookup",
    "text",
    "x_text",
]

_ESCAPE = re.compile(r"\\([\\;,nN])")


def unescape(raw: str) -> str:
    if "\\" not in raw:  # nothing escaped (most values): no pass of the expression
        return raw
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), raw)


#: The mapping of a component's properties, under icalendar's ``get``: icalendar keeps every name in
#: upper case (CaselessDict) and looks one up by raising and catching KeyError when it is absent, as
#: most properties a read asks for are (syncd's own X- ones on another client's item): 8 µs a look-up
#: against 0.5 µs here (measured on a parsed event, icalendar 7.3.2), some 30 of them per item.
_lookup = OrderedDict.get


def lookup(component: Any, name: str, default: Any = None) -> Any:
    """``component.get(name, default)``, without icalendar's costly miss."""
    return _lookup(component, name.upper(), default)


def all_values(component: Any, name: str) -> list[Any]:
    """Every occurrence of a property (icalendar gives one value or a list)."""
    value = _lookup(component, name.upper())  # lookup(component, name), a call less: 24 a read
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def x_text(component: Any, name: str) -> str | None:
    """The first value of an X-property as plain text, or ``None``."""
    values = all_values(component, name)
    if not values:
        return None
    return unescape(values[0].to_ical().decode("utf-8"))


def text(component: Any, name: str) -> str | None:
    """The first value of a standard TEXT property (SUMMARY, LOCATION, ...); empty counts as absent."""
    values = all_values(component, name)
    return str(values[0]) or None if values else None
