"""One CalDAV calendar object as syncd reads it: its parse into a :class:`RemoteItem`, isolated, and
the check that a body arrived whole.

Kept apart from the connector so that a process parsing a pull's items
(:mod:`syncd.connectors.parse_pool`) loads the mapping and nothing of the connector's HTTP side.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from syncd.connectors.base import RemoteItem, read_isolated, remote_item
from syncd.errors import ItemError
from syncd.mapping.fingerprint import fingerprints_of

if TYPE_CHECKING:
    from syncd.connectors.caldav_collection import RawItem
    from syncd.mapping.context import MappingContext


def parse_item(raw: RawItem, ctx: MappingContext) -> RemoteItem:
    """``raw`` read with ``ctx``; never raises: a refused item comes back with its reason."""
    # The iCalendar mapping (and icalendar) is imported by a pass that reads or writes an item:
    # a pass that found nothing changed never loads it.
    from syncd.mapping.ical import from_ical

    def parse() -> RemoteItem:
        try:
            parsed = from_ical(raw.data, ctx, raw.path)
        except (ItemError, ValueError):
            # icalendar's words for a cut body ("found no components") do not say what happened.
            cut = _unframed(raw.data, _content_lines(raw.data))
            if cut is not None:
                raise ItemError(raw.path, None, cut) from None
            raise
        fields = ctx.fingerprinted
        return remote_item(raw.path, raw.etag, parsed, raw.data,
                           fingerprints=None if fields is None else fingerprints_of(parsed.activity, fields))

    return read_isolated(raw.path, raw.etag, parse, raw=raw.data)


_LINE_BREAK = re.compile(r"\r\n|\n|\r")


def damage(data: bytes) -> str | None:
    """Why ``data`` is not a whole iCalendar object as a server would hold it, or ``None``.

    A body cut at a line boundary, or one whose broken lines icalendar skipped without a word, still
    parses; written over, it would lose what is missing. Whole means: BEGIN:VCALENDAR first,
    END:VCALENDAR last, and the parse kept every content line (counted after unfolding; icalendar
    yields each property value, BEGIN and END once per line).
    """
    lines = _content_lines(data)
    unframed = _unframed(data, lines)
    if unframed is not None:
        return unframed
    from icalendar import Calendar

    try:
        calendar = Calendar.from_ical(data)
    except Exception as exc:  # noqa: BLE001  # icalendar raises many types on odd input
        return f"the item as read cannot be parsed ({type(exc).__name__}: {exc})"
    kept = sum(1 for _ in calendar.property_items(recursive=True, sorted=False))
    if kept == len(lines):
        return None
    skipped = [
        str(message).partition(": ")[2] or str(message)
        for component in calendar.walk()
        for prop, message in component.errors
        if prop is None
    ]
    which = f" (first: {skipped[0]})" if skipped else ""
    return f"reading the item kept {kept} of its {len(lines)} lines{which}"


def _unframed(data: bytes, lines: list[str]) -> str | None:
    if not lines or lines[0].strip().upper() != "BEGIN:VCALENDAR":
        return "the item as read does not start with BEGIN:VCALENDAR"
    if lines[-1].strip().upper() != "END:VCALENDAR":
        return f"the item as read ends before END:VCALENDAR (cut short after {len(data)} bytes)"
    return None


def _content_lines(data: bytes) -> list[str]:
    """Unfolded, non-empty content lines (RFC 5545 3.1: a line starting with a blank continues the last)."""
    lines: list[str] = []
    for line in _LINE_BREAK.split(data.decode("utf-8", errors="replace")):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += line[1:]
        elif line.strip():
            lines.append(line)
    return lines
