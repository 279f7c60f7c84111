"""Real calendars no one here wrote, through the whole of syncd's mapping: calendar -> CRM -> calendar, and EWS.

``tests/data/ics/corpus/<source>/`` holds the test calendars of six calendar libraries (their licences are
in ``tests/data/ics/README.md``). Each file is split into one object resource per UID, as a CalDAV
server stores them. Every resource is

1. read as an activity (:func:`syncd.mapping.ical.from_ical`), as a pull from the user's calendar does;
2. saved to and loaded from a SQLite store, as the CRM keeps it;
3. written to a *second*, empty calendar (no previous version to keep foreign data from) and read again;
4. written as an EWS item, checked against Microsoft's schema, and read back as an Exchange pass would.

Asserted: no exception escapes any step; a refusal is an :class:`~syncd.errors.ItemError` whose reason is
one of :data:`REFUSALS` (the item breaks RFC 5545, or the target cannot express it); the occurrences the
second calendar shows (expanded by recurring-ical-events, as CalDAV clients do) are those of the source
over two years from its start, and so are syncd's own; what a user sees (title, place, wall-clock time
and zone, privacy, free/busy, attendees, categories) is the same; the EWS item has the same series
pattern and times. The per-source table is printed (``pytest -s``) and kept in :data:`TABLE`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from ews_schema import assert_valid
from icalendar import Calendar, Component
from ics_resources import CORPUS, resources

from mapping.ews_support import create_payload, reparse
from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ews import from_ews, to_ews
from syncd.mapping.ical import from_ical, to_ical
from syncd.mapping.ical_alarms import read_reminder
from syncd.mapping.occurrences import occurrences
from syncd.model import Activity, CrmUser
from syncd.store import repository
from syncd.store.db import make_engine, session_factory, upgrade

SOURCES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
OWNER = CrmUser("owner@example.com", "Owner", "Europe/Amsterdam")
CTX = MappingContext(owner=OWNER)

#: Why an item may be refused, by the words of its reason: each is RFC 5545 breaking, or a target that
#: cannot express what RFC 5545 allows.
REFUSALS: dict[str, tuple[str, ...]] = {
    "no start (an appointment without a time cannot be shown)": ("needs a start",),
    "invalid: broken value or rule": (
        "unreadable", "is not a valid", "invalid recurrence rule", "not a valid RFC 5545 RRULE", "needs FREQ",
        "both COUNT and UNTIL", "ends before it starts", "is not a valid date",
    ),
    "invalid: TZID without VTIMEZONE": ("neither known nor defined by a VTIMEZONE",),
    "invalid: one resource, several items": (
        "several UIDs", "several components without RECURRENCE-ID", "mixes events",
    ),
    "not iCalendar": ("no VEVENT or VTODO",),
    "RFC 7529 RSCALE": ("RSCALE",),
    "EXRULE (removed by RFC 5545)": ("EXRULE",),
    "Exchange: an all-day occurrence of a timed series": ("made all-day cannot be written to Exchange",),
    "Exchange: a calendar's own time zone": ("cannot express a calendar's own time zone",),
    "Exchange: pattern it cannot express": ("cannot be expressed exactly",),
    "Exchange: reminder after the start": ("after an appointment starts",),
}


#: Items that differ, each with why: all break RFC 5545 or say something two readings of it disagree on.
#: The test fails when one of them no longer differs, so the list stays true.
KNOWN: dict[str, str] = {
    **{
        f"recurring-ical-events/{name}": "DTSTART a date and DTEND a time (RFC 5545 3.6.1 forbids it): read as all-day"
        for name in (
            "issue_201_mixed_datetime_and_date.ics#0",
            *(f"issue_201_test_matrix.ics#{n}" for n in (2, 3, 4, 5, 8, 9, 14, 15, 22, 23)),
        )
    },
    **{
        f"recurring-ical-events/issue_28_rrule_with_UTC_endinginZ.ics#{n}": "Outlook's date-time UNTIL on an all-day "
        "series (RFC 5545 wants a date): its last day as Outlook means it, the midnight it names in its own zone"
        for n in (0, 1)
    },
    "recurring-ical-events/issue_75_range_parameter.ics#0": "a DATE UNTIL on a timed series (RFC 5545 3.3.10 forbids "
    "it): syncd keeps that day's occurrence, recurring-ical-events stops at its midnight (its RANGE=THISANDFUTURE "
    "changes are otherwise identical: tests/mapping/test_ical_range.py)",
    "recurring-ical-events/issue_253_additional_recurrence_id.ics#0": "an override of a day the rule never gives, "
    "carrying its own RRULE: shown as that occurrence",
    **{
        f"icalendar/issue_156_RDATE_with_PERIOD_TZID_khal{suffix}.ics#0": "khal's lone RANGE=THISANDFUTURE occurrence "
        "with RDATEs and no series (Lotus Notes' invitation to these meetings): syncd shows every RDATE, "
        "recurring-ical-events only the component itself"
        for suffix in ("", "_2")
    },
    "khal/tz_windows_format.ics#0": "a Windows zone name (New Zealand) whose VTIMEZONE says Europe: syncd follows "
    "the name",
    "recurring-ical-events/issue_61_time_zone_error.ics#0": "an ATTENDEE with its parameters in its value (a broken "
    "line): no address can be read from it without guessing, so the CRM keeps it by that text as a name only",
}


def reason_class(error: ItemError) -> str | None:
    text = str(error)
    return next((name for name, words in REFUSALS.items() if any(w in text for w in words)), None)


@dataclass
class Tally:
    items: int = 0
    identical: int = 0
    differing: Counter[str] = field(default_factory=Counter)
    known: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    ews_refused: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


TABLE: dict[str, Tally] = defaultdict(Tally)


# --- what a user sees ----------------------------------------------------------------------------------


def master(data: bytes) -> tuple[Component, str]:
    """The series (or the single item) and the property its start is; of several occurrences without
    their series, the earliest, whose original time (RECURRENCE-ID) syncd's series starts at."""
    items = [c for c in Calendar.from_ical(data).walk() if c.name in ("VEVENT", "VTODO")]
    series = [c for c in items if "RECURRENCE-ID" not in c]
    if series or len(items) == 1:
        return (series or items)[0], "DTSTART"
    return min(items, key=lambda c: str(_instant(c["RECURRENCE-ID"].dt, ZoneInfo("UTC")))), "RECURRENCE-ID"


def _text(component: Component, name: str, default: str = "") -> str:
    value = component.get(name)
    return str(value).strip() if value is not None and not isinstance(value, list) else default


def _wall(component: Component, name: str) -> Any:
    """A time as its clock shows it: the wall-clock reading and whether it is zoned, UTC or a date."""
    value = getattr(component.get(name), "dt", None)
    if isinstance(value, datetime):
        utc = value.tzinfo is not None and value.utcoffset() == timedelta()
        return value.replace(tzinfo=None), "UTC" if utc else ""
    return value


def _people(component: Component) -> set[str]:
    values = component.get("ATTENDEE")
    values = values if isinstance(values, list) else [values] if values is not None else []
    return {str(v).casefold().removeprefix("mailto:") for v in values}


def _categories(component: Component) -> set[str]:
    values = component.get("CATEGORIES")
    values = values if isinstance(values, list) else [values] if values is not None else []
    return {str(c).casefold() for v in values for c in getattr(v, "cats", [v])}


def visible(data: bytes) -> dict[str, Any]:
    component, start = master(data)
    return {
        "title": _text(component, "SUMMARY"),
        "location": _text(component, "LOCATION"),
        "wall-clock start": _wall(component, start),
        **_own(component, _floating(Calendar.from_ical(data))),
        "attendees": _people(component),
        "categories": _categories(component),
    }


def _own(component: Component, floating: ZoneInfo) -> dict[str, Any]:
    """What each occurrence shows of its own: privacy, free/busy and the alarm that rings first (in
    minutes before its start; a calendar rings the earliest; a day is the calendar's)."""
    times = [getattr(component.get(name), "dt", None) for name in ("DTSTART", "DTEND", "DUE")]
    times = [t.replace(tzinfo=floating) if isinstance(t, datetime) and t.tzinfo is None else t for t in times]
    ends = times[1] if times[1] is not None else times[2]
    return {
        # An empty CLASS or TRANSP is none (RFC 5545's defaults: public, opaque).
        "privacy": (_text(component, "CLASS") or "PUBLIC").upper(),
        "free/busy": (_text(component, "TRANSP") or "OPAQUE").upper() if component.name == "VEVENT" else "",
        "reminder": read_reminder(component, times[0], ends, floating.key),
    }


def occurrences_shown(data: bytes) -> dict[Any, dict[str, Any]]:
    """Each component with a RECURRENCE-ID, by that instant (of an all-day series, its day: some write a
    midnight for it): what that one occurrence shows of its own."""
    calendar = Calendar.from_ical(data)
    days = not isinstance(getattr(master(data)[0].get("DTSTART"), "dt", None), datetime)

    def key(value: date | datetime) -> date | datetime:
        return value.date() if days and isinstance(value, datetime) else _instant(value, _floating(calendar))

    return {
        key(c["RECURRENCE-ID"].dt): _own(c, _floating(calendar))
        for c in calendar.walk() if c.name in ("VEVENT", "VTODO") and "RECURRENCE-ID" in c
    }


def same_occurrences(data: bytes, second: bytes) -> list[str]:
    """What any one occurrence shows of its own that the second calendar does not. A lone occurrence
    (an invitation to one) is written as a single item: its own values are then that item's."""
    one, other = occurrences_shown(data), occurrences_shown(second)
    single = _own(master(second)[0], _floating(Calendar.from_ical(second))) if not other and len(one) == 1 else {}
    return sorted({
        f"occurrence {key}" for at, own in one.items() for key in own if own[key] != other.get(at, single).get(key)
    })


# --- occurrences ---------------------------------------------------------------------------------------


def _times(activity: Activity) -> tuple[Any, ...]:
    """Start, end and due as instants: Python finds no time in a repeated hour (a clock set back) equal
    to the same instant in another zone (PEP 495), and the store gives times back in UTC."""
    utc = ZoneInfo("UTC")
    return tuple(None if m is None else _instant(m, utc) for m in (activity.start, activity.end, activity.due))


def window(activity: Activity) -> tuple[datetime, datetime]:
    anchor = activity.start if activity.start is not None else activity.due
    if anchor is None:
        anchor = date(2026, 1, 1)  # a to-do without dates is at no time; any span shows that
    first = anchor if isinstance(anchor, datetime) else datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC)
    first = first.astimezone(UTC) - timedelta(days=1)
    return first, first + timedelta(days=2 * 366)


def _instant(value: date | datetime, floating: ZoneInfo) -> date | datetime:
    if not isinstance(value, datetime):
        return value
    return (value if value.tzinfo else value.replace(tzinfo=floating)).astimezone(UTC)


def shown(data: bytes, span: tuple[datetime, datetime]) -> set[tuple[Any, Any]]:
    """The occurrences a CalDAV client shows, with recurring-ical-events."""
    calendar = Calendar.from_ical(data)
    floating = _floating(calendar)
    found = set()
    for item in recurring_ical_events.of(calendar, components=["VEVENT", "VTODO"]).between(*span):
        start = item.get("DTSTART") or item.get("DUE")
        end = item.get("DTEND") or item.get("DUE") or start
        first, last = _instant(start.dt, floating), _instant(end.dt, floating)
        if not isinstance(first, datetime) and first == last:
            last = first + timedelta(days=1)  # DTEND = DTSTART on a day: shown as that day
        found.add((first, last))
    return found


def _floating(calendar: Component) -> ZoneInfo:
    """The zone a time without one is in: the calendar's X-WR-TIMEZONE, else the user's."""
    zone = calendar.get("X-WR-TIMEZONE")
    return ZoneInfo(str(zone)) if zone and str(zone) in _ZONES else ZoneInfo(OWNER.timezone or "UTC")


def expanded(activity: Activity, span: tuple[datetime, datetime]) -> set[tuple[Any, Any]]:
    """The occurrences syncd holds, with its own expander."""
    utc = ZoneInfo("UTC")
    return {(_instant(s, utc), _instant(e, utc)) for s, e in occurrences(activity, *span)}


def _starts(found: set[tuple[Any, Any]], activity: Activity) -> set[Any]:
    """Occurrences to compare with syncd's own expansion, which places a to-do on its start or due
    moment and gives it no length of its own: for to-dos, only where they are."""
    if activity.is_event:
        return found
    # recurring-ical-events shows a to-do without dates over all time, syncd at no time: both mean "undated".
    return {start for start, _ in found} if activity.start or activity.due else set()


_ZONES = __import__("zoneinfo").available_timezones()


def pattern(activity: Activity) -> Activity:
    """The series without its exceptions: Exchange writes those to occurrences after the master."""
    rec = activity.recurrence
    return activity.replace(recurrence=rec and rec.__class__(rec.rrule))


# --- the run -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('corpus') / 'crm.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        repository.add_user(session, OWNER)
        session.commit()
        yield session
    engine.dispose()


def through_syncd(name: str, data: bytes, session: Any, tally: Tally) -> None:
    tally.items += 1
    try:
        activity = from_ical(data, CTX, name).activity
    except ItemError as error:
        why = reason_class(error)
        if name in KNOWN:
            tally.known[KNOWN[name]] += 1
        else:
            assert why is not None, f"{name}: refused for a reason RFC 5545 does not give: {error}"
            tally.refused[why] += 1
        return
    repository.save_activity(session, activity)
    session.commit()
    kept = repository.get_activity(session, activity.id)
    assert kept is not None
    second = to_ical(kept, CTX)
    again = from_ical(second, CTX, "second").activity
    span = window(activity)

    differences = []
    source_view = shown(data, span)
    if source_view != shown(second, span):
        differences.append("occurrences")
    if _starts(expanded(kept, span), kept) != _starts(source_view, kept):
        differences.append("occurrences (syncd's expansion)")
    if again.recurrence != kept.recurrence or _times(again) != _times(kept):
        differences.append("schedule read back")
    before, after = visible(data), visible(second)
    differences += [key for key in before if before[key] != after[key]]
    differences += same_occurrences(data, second)
    if name in KNOWN:
        tally.known[KNOWN[name]] += 1
        assert differences, f"{name} no longer differs: remove it from KNOWN"
    else:
        for difference in differences:
            tally.differing[difference] += 1
            tally.examples[difference].append(name)
    if not differences:
        tally.identical += 1

    try:
        item = to_ews(kept, CTX)
    except ItemError as error:
        why = reason_class(error)
        assert why is not None and why.startswith("Exchange"), f"{name}: EWS refused it: {error}"
        tally.ews_refused[why] += 1
        return
    assert_valid(create_payload(item))
    back = from_ews(reparse(item), CTX).activity
    if expanded(pattern(back), span) != expanded(pattern(kept), span):
        tally.differing["Exchange occurrences"] += 1
        tally.examples["Exchange occurrences"].append(name)


# Slow (half a minute), and its list of known differences is that of the newest icalendar and
# recurring-ical-events: the run at the dependency floors (.ci/run) leaves it out, as older parsers
# read some of these third-party files differently.
@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_corpus_goes_through_syncd_unchanged(source: str, store: Any) -> None:
    tally = TABLE[source]
    for path in sorted((CORPUS / source).glob("*.ics")):
        for name, data in resources(path):
            through_syncd(f"{source}/{name}", data, store, tally)
    print(f"\n{source}: {tally.items} items, {tally.identical} identical, known differences {dict(tally.known)}, "
          f"refused {dict(tally.refused)}, refused by Exchange {dict(tally.ews_refused)}")
    assert not tally.differing, f"{source}: {dict(tally.examples)}"
