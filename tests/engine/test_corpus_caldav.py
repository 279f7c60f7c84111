"""The corpus of real calendars (tests/mapping/test_corpus.py) through the real thing: a CalDAV server,
the engine and the CRM store, and back out to a second calendar.

For each source, the same per-UID resources as the mapping test are PUT into the owner's calendar A on an
embedded Radicale; one pass of a binding on A pulls them into the CRM, over a sync window that holds
every date a calendar can have; then one pass of a second binding of the same owner on an empty calendar
B pushes them. Asserted, per item: no pass fails; an item error is one of the mapping test's
:data:`~mapping.test_corpus.REFUSALS` (or a :data:`~mapping.test_corpus.KNOWN` item); every item the pull
took is in calendar B, with the occurrences a CalDAV client shows and what a user sees (the mapping
test's comparison) identical to the source's, except the known differences; and a second pass of each
binding writes nothing, so nothing flaps. The per-source table is printed (``pytest -s``).

Radicale's parser (vobject) refuses a third of the corpus, valid items among them (RDATE periods, binary
values, items without UID): what it refuses goes the same way through Xandikos, whose parser is
icalendar. What both servers refuse (no VCALENDAR, files no parser reads) is listed, not asserted:
nothing of syncd's ran on it.

Each source gets its own store and calendar pair: the libraries' test files reuse UIDs across sources.
Within a source, a UID another resource already used gets a suffix, because a calendar holds one item
per UID and the files are independent tests, not one calendar (the UID is no property a user sees).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import recurring_ical_events
from caldav_servers import CalDavServer, caldav_server_pool, server_named, server_world  # noqa: F401
from icalendar import Calendar, Component
from mapping.test_corpus import (
    CORPUS,
    KNOWN,
    REFUSALS,
    SOURCES,
    resources,
    same_occurrences,
    shown,
    visible,
    window,
)
from radicale_server import FaultProxy
from world import Phone, World

from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.engine.runner import PassReport
from syncd.mapping.identity import X_ID, activity_id_for_uid

#: Every date a calendar can hold, less a few days the engine's window arithmetic may step past.
_TODAY = datetime.now(UTC).date()
PAST_DAYS, FUTURE_DAYS = (_TODAY - date(1, 1, 1)).days - 3, (date(9999, 12, 31) - _TODAY).days - 3


@dataclass
class Tally:
    items: int = 0
    accepted: int = 0
    pulled: int = 0
    empty: int = 0
    by_xandikos: int = 0
    identical: int = 0
    known: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    refused_by_servers: list[str] = field(default_factory=list)
    differing: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


TABLE: dict[str, Tally] = defaultdict(Tally)


def refusal(reason: str) -> str | None:
    """The mapping test's class of an item error: the words of syncd's reason after the engine's
    "unreadable calendar item: <path>: " (whose "unreadable" would match any reason)."""
    reason = re.sub(r"^unreadable calendar item: \S+: ", "", reason)
    return next((name for name, words in _REFUSALS.items() if any(w in reason for w in words)), None)


#: The CalDAV connector says "not iCalendar" before the mapping sees the item.
_REFUSALS = {**REFUSALS, "not iCalendar": (*REFUSALS["not iCalendar"], "does not start with BEGIN:VCALENDAR")}


def unique_uids(source: str) -> Iterator[tuple[str, bytes]]:
    """The mapping test's resources of a source as a calendar holds them: a bare VEVENT (khal's test files)
    in a VCALENDAR, a reused UID made unique (see the module's text)."""
    used: set[str] = set()
    for path in sorted((CORPUS / source).glob("*.ics")):
        for name, data in resources(path):
            try:
                calendar = Calendar.from_ical(data)
            except ValueError:
                yield f"{source}/{name}", data
                continue
            changed = calendar.name in ("VEVENT", "VTODO")
            calendar = wrapped(calendar) if changed else calendar
            components = [c for c in calendar.walk() if c.name in ("VEVENT", "VTODO") and c.get("UID")]
            uids = {str(c["UID"]) for c in components}
            if uids & used:
                changed = True
                for component in components:
                    component["UID"] = f"{component['UID']}-{len(used)}"
                uids = {str(c["UID"]) for c in components}
            used |= uids
            yield f"{source}/{name}", calendar.to_ical() if changed else data


def wrapped(component: Component) -> Calendar:
    """A bare VEVENT (khal's test files) in the VCALENDAR a calendar server stores it in."""
    calendar = Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", "-//syncd tests//corpus//EN")
    calendar.add_component(component)
    return calendar


def source_id(data: bytes, path: str) -> str:
    """The CRM id the pull gives the item: from its UID, else from its resource's path (ical.py's rule)."""
    try:
        items = Calendar.from_ical(data).walk()
        uids = {str(c["UID"]) for c in items if c.name in ("VEVENT", "VTODO") and c.get("UID")}
    except ValueError:
        uids = set()
    return activity_id_for_uid(uids.pop() if len(uids) == 1 else path)


def never_shown(data: bytes) -> bool:
    """A calendar client shows no occurrence of the item, ever."""
    items = recurring_ical_events.of(Calendar.from_ical(data), components=["VEVENT", "VTODO"]).all()
    return next(iter(items), None) is None


def calendar_b(phone: Phone) -> dict[str, bytes]:
    """Calendar B's items by the CRM id syncd wrote into them."""
    found = {}
    for href in phone.hrefs():
        status, data, _ = phone._request("GET", href)
        assert status == 200, (href, status)
        for component in Calendar.from_ical(data).walk():
            if component.get(X_ID):
                found[str(component[X_ID])] = data
                break
    return found


def idle(world: World, name: str) -> None:
    """Another pass of the binding does nothing but retry the items it refused (and refuse them again)."""
    report = world.sync(name)
    assert report.result == "ok", report.error
    done = {k: v for k, v in report.counts.items() if k != "errors" and v}
    assert not done, f"binding {name}: a second pass did {done}: {report.plan}"


def refused_in(report: PassReport, names: dict[str, str]) -> dict[str, str]:
    """The pass's item errors by resource name; the error's key is the item's href (pull) or CRM id (push)."""
    found = {}
    for error in report.errors:
        key, _, reason = error.partition(": ")
        key = key.removeprefix("remote:")
        found[names.get(key.rsplit("/", 1)[-1], names.get(key, key))] = reason
    return found


def through(server: str, world: World, items: list[tuple[str, bytes]], tally: Tally) -> list[tuple[str, bytes]]:
    """The items through calendar A, the CRM and calendar B of ``world``; those the server refuses."""
    phone_a = world.bind("a", past_days=PAST_DAYS, future_days=FUTURE_DAYS)
    phone_b = world.bind("b", past_days=PAST_DAYS, future_days=FUTURE_DAYS)
    names: dict[str, str] = {}  # resource name and CRM id -> the corpus item
    accepted: dict[str, tuple[bytes, str]] = {}
    refused_by_server = []
    for n, (name, data) in enumerate(items):
        href = f"r{n}.ics"
        path = urlsplit(phone_a.calendar_url).path + href
        status, _, _ = phone_a._request("PUT", path, data, {"Content-Type": "text/calendar; charset=utf-8"})
        # The server's own parser refuses it (nothing of syncd's ran), unless it failed after storing it.
        if status >= 400 and phone_a._request("GET", path)[0] != 200:
            refused_by_server.append((name, data))
            continue
        tally.accepted += 1
        activity_id = source_id(data, path)
        names[href] = names[activity_id] = name
        accepted[name] = (data, activity_id)

    pull = world.sync("a")
    assert pull.result == "ok", pull.error
    push = world.sync("b")
    assert push.result == "ok", push.error
    failed = refused_in(pull, names) | refused_in(push, names)
    for name, reason in failed.items():
        if name in KNOWN:
            tally.known[KNOWN[name]] += 1
            continue
        why = refusal(reason)
        assert why is not None, f"{name} ({server}): refused for a reason RFC 5545 does not give: {reason}"
        tally.refused[why] += 1

    second = calendar_b(phone_b)
    for name, (data, activity_id) in accepted.items():
        if name in failed:
            continue
        kept = world.get(activity_id)
        if kept is None:
            # A series whose rule gives no occurrence (UNTIL before DTSTART) is in no sync window.
            assert never_shown(data), f"{name} ({server}): neither pulled into the CRM nor refused"
            tally.empty += 1
            continue
        tally.pulled += 1
        assert activity_id in second, f"{name} ({server}): pulled into the CRM as {activity_id}, not in calendar B"
        span = window(kept)
        written = second[activity_id]
        differences = []
        if shown(data, span) != shown(written, span):
            differences.append("occurrences")
        before, after = visible(data), visible(written)
        differences += [key for key in before if before[key] != after[key]]
        differences += same_occurrences(data, written)
        if name in KNOWN:
            tally.known[KNOWN[name]] += 1
        elif differences:
            for difference in differences:
                tally.differing[difference].append(f"{name} ({server})")
        else:
            tally.identical += 1

    idle(world, "a")
    idle(world, "b")
    return refused_by_server


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_corpus_goes_through_caldav_and_back_to_a_second_calendar(
    source: str, tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy,
    caldav_server_pool: dict[str, CalDavServer], tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
) -> None:
    tally = TABLE[source]
    items = list(unique_uids(source))
    tally.items = len(items)
    (tmp_path / "radicale").mkdir()
    left = through("Radicale", World(tmp_path / "radicale", radicale, proxy), items, tally)
    tally.by_xandikos = len(left)
    if left:
        xandikos = server_named(caldav_server_pool, "xandikos", tmp_path_factory)
        (tmp_path / "xandikos").mkdir()
        with contextmanager(server_world)(tmp_path / "xandikos", xandikos) as world:
            left = through("Xandikos", world, left, tally)
            tally.by_xandikos -= len(left)
    tally.refused_by_servers = [name for name, _ in left]
    print(f"\n{source}: {tally.items} items, {tally.accepted} accepted by a server ({tally.by_xandikos} only by "
          f"Xandikos), {tally.pulled} in the CRM and calendar B, "
          f"{tally.empty} without any occurrence (not pulled), {tally.identical} identical, known differences "
          f"{dict(tally.known)}, refused {dict(tally.refused)}, refused by both servers {tally.refused_by_servers}")
    assert not tally.differing, f"{source}: {dict(tally.differing)}"
