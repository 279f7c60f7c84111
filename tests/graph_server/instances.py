"""The instances a calendar view shows: single events, and a series' occurrences and exceptions."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import recurrence, times
from .errors import item_not_found
from .store import Event, SeriesException

_OCCURRENCE = "AAMkOcc"
# Occurrences of an endless series are generated this far at most (a calendar view is bounded anyway).
_LIMIT = 5000


@dataclass(frozen=True)
class Instance:
    """One row of a calendar view: what Graph calls singleInstance, occurrence or exception."""

    id: str
    event: Event
    kind: str  # singleInstance, occurrence, exception (seriesMaster when the master itself is meant)
    start: datetime  # UTC
    end: datetime
    original_start: datetime | None
    exception: SeriesException | None = None

    @property
    def change_key(self) -> str:
        if self.exception is not None:
            return self.exception.change_key
        return self.event.change_key

    @property
    def modified(self) -> datetime:
        return self.exception.modified if self.exception is not None else self.event.modified

    def data(self) -> dict[str, Any]:
        """The instance's properties: the master's, with an exception's overrides on top."""
        merged = dict(self.event.data)
        if self.kind in ("occurrence", "exception"):
            merged.pop("recurrence", None)
        if self.exception is not None:
            merged.update(self.exception.overrides)
        return merged


def occurrence_id(master_id: str, original_start: datetime) -> str:
    raw = f"{master_id}|{original_start.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    return _OCCURRENCE + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_occurrence_id(item_id: str) -> tuple[str, datetime] | None:
    if not item_id.startswith(_OCCURRENCE):
        return None
    text = item_id[len(_OCCURRENCE):]
    try:
        master_id, _, stamp = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().partition("|")
        return master_id, datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def span(data: dict[str, Any]) -> tuple[datetime, datetime]:
    return times.to_utc(data["start"]), times.to_utc(data["end"])


def master(event: Event) -> Instance:
    start, end = span(event.data)
    return Instance(event.id, event, "seriesMaster" if event.is_series else "singleInstance", start, end, None)


def series_starts(event: Event, until: datetime) -> list[datetime]:
    """UTC original starts of a series' occurrences up to `until`, cancelled ones included."""
    start = event.data["start"]
    tz = times.zone(start.get("timeZone") or "UTC")
    return recurrence.starts(event.data["recurrence"], times.parse_local(start["dateTime"]), tz, until, _LIMIT)


def occurrence(event: Event, original_start: datetime) -> Instance | None:
    """The occurrence or exception that originally starts then, None if cancelled or not in the series."""
    if original_start in event.cancelled:
        return None
    first, last = span(event.data)
    exception = event.exceptions.get(original_start)
    if exception is not None:
        # An exception keeps its own occurrence's time unless it moved it, as the service does.
        start = times.to_utc(exception.overrides["start"]) if "start" in exception.overrides else original_start
        end = (times.to_utc(exception.overrides["end"]) if "end" in exception.overrides
               else start + (last - first))
        return Instance(exception.id, event, "exception", start, end, original_start, exception)
    if original_start not in series_starts(event, original_start):
        return None
    return Instance(
        occurrence_id(event.id, original_start), event, "occurrence", original_start,
        original_start + (last - first), original_start,
    )


def _overlaps(start: datetime, end: datetime, window_start: datetime, window_end: datetime) -> bool:
    if start == end:
        return window_start <= start < window_end
    return start < window_end and end > window_start


def in_window(event: Event, window_start: datetime, window_end: datetime) -> list[Instance]:
    """The event's instances overlapping the window (a series: its occurrences and exceptions)."""
    if not event.is_series:
        single = master(event)
        return [single] if _overlaps(single.start, single.end, window_start, window_end) else []
    first, last = span(event.data)
    duration = last - first
    found = []
    for original in series_starts(event, window_end):
        if original in event.cancelled or original in event.exceptions:
            continue
        if _overlaps(original, original + duration, window_start, window_end):
            found.append(
                Instance(
                    occurrence_id(event.id, original), event, "occurrence", original, original + duration, original
                )
            )
    for original in event.exceptions:
        instance = occurrence(event, original)
        if instance is not None and _overlaps(instance.start, instance.end, window_start, window_end):
            found.append(instance)
    return found


def resolve(events: dict[str, Event], item_id: str) -> Instance:
    """An event, series master, occurrence or exception by id (404 if unknown or cancelled)."""
    parsed = parse_occurrence_id(item_id)
    if parsed is None:
        event = events.get(item_id)
        if event is None:
            raise item_not_found()
        return master(event)
    event = events.get(parsed[0])
    if event is None or not event.is_series:
        raise item_not_found()
    instance = occurrence(event, parsed[1])
    if instance is None:
        raise item_not_found()
    return instance


def cancelled_ids(event: Event) -> list[str]:
    """cancelledOccurrences: `OID.{masterId}.{date}` with the date in the series' zone."""
    tz = times.zone(event.data["start"].get("timeZone") or "UTC")
    return [f"OID.{event.id}.{s.astimezone(tz).date().isoformat()}" for s in sorted(event.cancelled)]

