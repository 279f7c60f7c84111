"""A stable content hash of an activity, so the engine can tell a real change from noise.

It is computed on the domain object, after mapping, so everything a server rewrites without changing
meaning (DTSTAMP, LAST-MODIFIED, PRODID, SEQUENCE, property order, VTIMEZONE spelling, an equivalent
UTC offset, attendee order, e-mail case) is already gone. Times are compared as instants; all-day
dates as dates.

Nothing an activity holds may make it raise: the engine fingerprints every item of every pass, before
any rule has looked at it, so lists are sorted on keys that never compare ``None`` with text, and
instants that UTC cannot show (year 1 east of Greenwich) or an all-day end past 9999-12-31 still get
a stable form. For every value that sorted and formatted before, the result is unchanged (existing
links keep their fingerprints).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

from syncd.model import (
    CONTENT_FIELDS,
    Activity,
    Moment,
    Override,
    Participant,
    Recurrence,
    Regarding,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _moment(value: date | datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return "floating:" + value.isoformat()
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            # Aware subtraction never builds an out-of-range datetime; only such instants get this form.
            since = value - _EPOCH
            return f"epoch{since.days:+d}d{since.seconds}s"
        if utc.year >= 1000:
            # What the strftime below gives, a few times faster ("+00:00" cut off its end).
            return utc.isoformat(timespec="seconds")[:19] + "Z"
        # strftime's %Y is the platform's: glibc writes year 999 as "999", and so it was stored.
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def _order(row: list[Any]) -> list[tuple[bool, Any]]:
    """A sort key for a row of text-or-None: None first, never compared with text.

    Rows whose values compared before compare the same way, so the order (and the hash) is unchanged."""
    return [(value is not None, "" if value is None else value) for value in row]


def _end(activity: Activity) -> Moment | str | None:
    try:
        return activity.effective_end
    except OverflowError:  # an all-day 9999-12-31 with end == start: its exclusive end has no date
        return f"{activity.end}+1d"


def _text(value: str | None) -> str | None:
    """Servers differ in line endings and trailing blanks; an empty text is no text."""
    if value is None:
        return None
    value = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    return value or None


def _participant(p: Participant) -> list[Any]:
    return [p.kind.value, p.email.casefold() if p.email else None, _text(p.name), p.role.value, p.response.value]


def _regarding(r: Regarding) -> list[Any]:
    return [r.kind.value, r.id, _text(r.name)]


def _series_span(activity: Activity) -> timedelta | None:
    start, end = activity.start, _end(activity) if activity.is_event else None
    if not isinstance(start, date) or not isinstance(end, date):
        return None
    if isinstance(start, datetime) != isinstance(end, datetime):
        return None
    try:
        return end - start
    except (TypeError, OverflowError):  # naive beside aware: no series length to compare with
        return None


def _override(o: Override, series: timedelta | None) -> list[Any]:
    # An override that moves an occurrence may or may not spell out what it keeps of the series: a
    # start equal to the occurrence's own, an end one series length after its start. Calendars
    # differ in which they write back, so both spellings are one content.
    # Imported here (icalendar with it): the engine loads this module for every pass, a pass that
    # fingerprints nothing (nothing changed) needs no iCalendar code.
    from syncd.mapping.ical_recurrence import day_end, instant_end

    start = None if o.start is not None and _moment(o.start) == _moment(o.recurrence_id) else o.start
    end = o.end
    begin = o.start if o.start is not None else o.recurrence_id
    if isinstance(o.recurrence_id, datetime) and not isinstance(begin, datetime):
        # One occurrence of a timed series made all-day: no end, or its start, is one day (never the series').
        end = day_end(begin, end)
    elif isinstance(begin, datetime) and not isinstance(o.recurrence_id, datetime):
        # The reverse, one occurrence of an all-day series given its own times: no end, or its start, is an
        # instant (never the series' length of days).
        end = instant_end(begin, end)
    elif end is not None and series is not None and isinstance(end, datetime) == isinstance(begin, datetime):
        try:
            if end - begin == series:
                end = None
        except (TypeError, OverflowError):
            pass
    form = [_moment(o.recurrence_id), _moment(start), _moment(end), _text(o.subject), _text(o.description),
            _text(o.location), o.status]
    # Added after links existed: only an occurrence that has its own gets a longer form (see the module doc).
    own = [o.reminder_minutes, o.reminder_off or None, _enum(o.sensitivity), _enum(o.show_as)]
    if any(value is not None for value in own) or o.this_and_future:
        form += own
    if o.this_and_future:
        form.append("THISANDFUTURE")  # after a full ``own``, so rows never compare it with another kind
    return form


def _enum(value: Enum | None) -> Any:
    return None if value is None else value.value


def _rrule(rule: str) -> str:
    parts = sorted(p.strip().upper() for p in rule.removeprefix("RRULE:").split(";") if p.strip())
    return ";".join(p for p in parts if p not in {"INTERVAL=1", "WKST=MO"})


def _recurrence(r: Recurrence | None, series: timedelta | None) -> Any:
    if r is None:
        return None
    overrides = [_override(o, series) for o in r.overrides]
    form: list[Any] = [_rrule(r.rrule), sorted({_moment(d) or "" for d in r.exdates}), sorted(overrides, key=_order)]
    # Added after links existed: only a series that has them gets a longer form (see the module doc).
    if r.rdates or r.extra_rrules:
        form += [sorted({_moment(d) or "" for d in r.rdates}), sorted({_rrule(x) for x in r.extra_rrules})]
    return form


#: Fields added after links existed: left out while they hold their default, so that an activity
#: without them keeps the fingerprint its link recorded (and is not taken for changed).
_LATER = frozenset(
    {"sensitivity", "show_as", "categories", "attachments", "extra", "organizer", "timezone_definition"}
)
#: What a VTIMEZONE says besides its rules: a server may add, drop or reword it.
_ZONE_BOOKKEEPING = ("LAST-MODIFIED", "TZURL", "COMMENT", "X-")


def _zone_rules(definition: str) -> Any:
    """A kept VTIMEZONE's observances, each as its sorted property lines: the same rules however a
    server orders, folds or annotates them."""
    from icalendar import Timezone

    try:
        component = Timezone.from_ical(definition)
        return sorted(
            [observance.name, sorted(
                line for line in observance.content_lines()
                if line and not line.startswith(("BEGIN:", "END:", *_ZONE_BOOKKEEPING))
            )]
            for observance in component.subcomponents
        )
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return definition  # not readable (the rules refuse it): still a stable form


def _later(name: str, value: Any) -> Any:
    if name == "categories":
        return sorted({c.strip() for c in value if c.strip()})
    if name == "attachments":
        return sorted(([a.url.strip(), _text(a.name)] for a in value), key=_order)
    if name == "extra":
        # 2.0 and 2, -0.0 and 0 are one number to JSON (and to PostgreSQL's JSONB, which keeps either).
        return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in value.items()}
    if name == "timezone_definition":
        return None if value is None else _zone_rules(value)
    if name == "organizer":
        # Its kind is the directory's reading of the e-mail on each side, not content.
        return None if value is None else [value.email.casefold() if value.email else None, _text(value.name)]
    return value.value if isinstance(value, Enum) else value


def _plain(value: Any) -> Any:
    """A field without a form of its own: texts as :func:`_text` has them, enums as their values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str) or value is None:
        return _text(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


#: The fields with a form of their own (each from the activity and the field's value); every other
#: field but the :data:`_LATER` ones is :func:`_plain`.
_FORMS: dict[str, Callable[[Activity, Any], Any]] = {
    "start": lambda _, value: _moment(value),
    "end": lambda activity, _: _moment(_end(activity)),
    "due": lambda _, value: _moment(value),
    "completed_at": lambda _, value: _moment(value),
    "participants": lambda _, value: sorted(map(_participant, value), key=_order),
    "regarding": lambda _, value: sorted(map(_regarding, value), key=_order),
    "recurrence": lambda activity, value: _recurrence(value, _series_span(activity)),
    "owner": lambda _, value: value.casefold(),
}


def canonical(activity: Activity, fields: Iterable[str] = CONTENT_FIELDS) -> dict[str, Any]:
    """The normalized content of ``fields``, as plain JSON data."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(activity, name)
        if name in _LATER:
            form = _later(name, value)
            if form not in (None, [], {}):
                out[name] = form
        elif (special := _FORMS.get(name)) is not None:
            out[name] = special(activity, value)
        else:
            # Most fields hold nothing: None is answered before _plain's type tests.
            out[name] = None if value is None else _plain(value)
    return out


#: The last activity fingerprinted and the canonical form of all its content: a link records two
#: fingerprints of one activity (every field, and the fields the calendar holds), one after the other,
#: and each field's form does not depend on the others asked for. Activities are frozen; the entry
#: keeps the activity, so its identity is not reused while it is compared.
_last: list[tuple[Activity, dict[str, Any]]] = []
_CONTENT = frozenset(CONTENT_FIELDS)


def _content(activity: Activity, fields: Iterable[str]) -> dict[str, Any]:
    names = fields if isinstance(fields, tuple | list | frozenset | set) else list(fields)
    if not _CONTENT.issuperset(names):
        return canonical(activity, names)
    last = _last[0] if _last else None
    if last is None or last[0] is not activity:
        last = (activity, canonical(activity))
        _last[:] = [last]  # one entry, replaced whole (passes may run in threads)
    every = last[1]
    return every if names is CONTENT_FIELDS else {name: every[name] for name in names if name in every}


#: ``json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))``, its encoder made once.
_encode = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode


def _hash(data: str) -> str:
    # A lone surrogate (JSON import can carry one) is no UTF-8; it must still hash, not raise.
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def fingerprint(activity: Activity, fields: Iterable[str] = CONTENT_FIELDS) -> str:
    return _hash(_encode(_content(activity, fields)))


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """:func:`fingerprints` of one activity, and the fields its second one covers."""

    fields: frozenset[str]
    crm: str
    remote: str


def fingerprints_of(activity: Activity, fields: frozenset[str]) -> Fingerprints:
    return Fingerprints(fields, *fingerprints(activity, fields))


def fingerprints(activity: Activity, fields: Collection[str]) -> tuple[str, str]:
    """``(fingerprint(activity), fingerprint(activity, fields))``, the pair a link records, from one
    canonical form."""
    chosen = fields if isinstance(fields, frozenset | set) else frozenset(fields)
    if not _CONTENT.issuperset(chosen):
        return fingerprint(activity), fingerprint(activity, chosen)
    every = _content(activity, CONTENT_FIELDS)
    return _hash(_encode(every)), _hash(_encode({name: form for name, form in every.items() if name in chosen}))


def changed_fields(a: Activity, b: Activity, fields: Iterable[str] = CONTENT_FIELDS) -> list[str]:
    """The fields whose normalized content differs between two versions."""
    names = list(fields)
    ca, cb = canonical(a, names), canonical(b, names)
    # A field at its default is left out of the canonical form: absent on one side is a change too.
    return [name for name in names if ca.get(name) != cb.get(name)]
