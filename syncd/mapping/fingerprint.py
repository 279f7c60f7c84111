"""A stable content hash of an activity, so the engine can tell a real change from noise.

It is computed on the domain object, after mapping, so everything a server rewrites without changing
meaning (DTSTAMP, LAST-MODIFIED, PRODID, SEQUENCE, property order, VTIMEZONE spelling, an equivalent
UTC offset, attendee order, e-mail case) is already gone. Times are compared as instants; all-day
dates as dates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

from syncd.model import CONTENT_FIELDS, Activity, Override, Participant, Recurrence, Regarding


def _moment(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return "floating:" + value.isoformat()
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


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


def _override(o: Override) -> list[Any]:
    return [_moment(o.recurrence_id), _moment(o.start), _moment(o.end), _text(o.subject), _text(o.description),
            _text(o.location), o.status]


def _rrule(rule: str) -> str:
    parts = sorted(p.strip().upper() for p in rule.removeprefix("RRULE:").split(";") if p.strip())
    return ";".join(p for p in parts if p not in {"INTERVAL=1", "WKST=MO"})


def _recurrence(r: Recurrence | None) -> Any:
    if r is None:
        return None
    return [_rrule(r.rrule), sorted({_moment(d) or "" for d in r.exdates}), sorted(_override(o) for o in r.overrides)]


def canonical(activity: Activity, fields: Iterable[str] = CONTENT_FIELDS) -> dict[str, Any]:
    """The normalized content of ``fields``, as plain JSON data."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(activity, name)
        if name == "end":
            value = activity.effective_end
        if name in {"start", "end", "due", "completed_at"}:
            out[name] = _moment(value)
        elif name == "participants":
            out[name] = sorted(_participant(p) for p in value)
        elif name == "regarding":
            out[name] = sorted(_regarding(r) for r in value)
        elif name == "recurrence":
            out[name] = _recurrence(value)
        elif name == "owner":
            out[name] = value.casefold()
        elif isinstance(value, Enum):
            out[name] = value.value
        elif isinstance(value, str) or value is None:
            out[name] = _text(value)
        elif isinstance(value, timedelta):
            out[name] = value.total_seconds()
        else:
            out[name] = value
    return out


def fingerprint(activity: Activity, fields: Iterable[str] = CONTENT_FIELDS) -> str:
    data = json.dumps(canonical(activity, fields), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:32]


def changed_fields(a: Activity, b: Activity, fields: Iterable[str] = CONTENT_FIELDS) -> list[str]:
    """The fields whose normalized content differs between two versions."""
    ca, cb = canonical(a, fields), canonical(b, fields)
    return [name for name in ca if ca[name] != cb[name]]
