"""CPU per pulled calendar item, step by step: what syncd spends between the bytes a server sends and
the rows it stores, against icalendar's own parse (the floor any mapping on icalendar pays).

Columns: ``icalendar parse`` is ``Calendar.from_ical`` alone, ``syncd's parse`` the same parse as a
pull makes it (:mod:`syncd.mapping.ical_parse`: each VTIMEZONE text parsed once). Then per item, as a
pull does it: ``from_ical`` (icalendar's parse, then the mapping to an Activity, with the
store's rules checked inside it), the two fingerprints a link records, the store's rules checked again
before the write, and the merge base (``activity_to_json``, then the JSON text the link row holds).

Item sets:

* ``phone``: the bench's own calendar items (:func:`bench.data.server_event`, UTC times, no VTIMEZONE);
* ``phone-tz``: the same events as Apple, Thunderbird and DAVx5 write them, ``TZID=Europe/Amsterdam``
  with its VTIMEZONE;
* ``outlook-tz``: the same with an Outlook "Customized Time Zone", which only the VTIMEZONE's rules name;
* ``syncd``: what syncd writes for the bench's CRM activities (what a second client of the same calendar,
  or syncd after a push, reads);
* ``corpus``: every resource of ``tests/data/ics/corpus`` (real libraries' test calendars, one resource
  per UID as a CalDAV server holds them).

``python -m bench.mapping_pull [--items N] [--rounds R] [--profile SET]``. Each set's ``digest`` hashes
what the steps produced (fingerprints, merge bases, refusals): it must not change when the mapping is
made faster.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import logging
import pstats
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from icalendar import Calendar

from bench.data import OWNER, ZONE, activities, server_event
from syncd.activity_json import activity_to_json
from syncd.engine.plan import Policy, crm_fingerprint, remote_fingerprint
from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ical import ParsedItem, from_ical, to_ical
from syncd.mapping.ical_parse import parse_calendar
from syncd.model import Activity, CrmUser
from syncd.store.rules import check_activity
from tests.ics_resources import CORPUS, resources

#: Fixed, so that the items (and the digests) are the same in every run.
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CTX = MappingContext(owner=CrmUser(OWNER, "Rep", ZONE))
POLICY = Policy(owner=OWNER)

_APPLE_ZONE = """BEGIN:VTIMEZONE\r
TZID:Europe/Amsterdam\r
BEGIN:DAYLIGHT\r
TZOFFSETFROM:+0100\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
DTSTART:19810329T020000\r
TZNAME:CEST\r
TZOFFSETTO:+0200\r
END:DAYLIGHT\r
BEGIN:STANDARD\r
TZOFFSETFROM:+0200\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
DTSTART:19961027T030000\r
TZNAME:CET\r
TZOFFSETTO:+0100\r
END:STANDARD\r
END:VTIMEZONE\r
"""
_OUTLOOK_ZONE = """BEGIN:VTIMEZONE\r
TZID:Customized Time Zone\r
BEGIN:STANDARD\r
DTSTART:16010101T030000\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:16010101T020000\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r
END:DAYLIGHT\r
END:VTIMEZONE\r
"""


def _zoned(body: bytes, tzid: str, vtimezone: str) -> bytes:
    """A UTC item as a client that writes local times writes it: DTSTART/DTEND on the zone's wall clock."""
    tz = ZoneInfo(ZONE)
    lines = []
    for line in body.decode().split("\r\n"):
        name, _, value = line.partition(":")
        if name in ("DTSTART", "DTEND"):
            wall = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).astimezone(tz)
            lines.append(f"{name};TZID={tzid}:{wall:%Y%m%dT%H%M%S}")
            continue
        if line == "BEGIN:VEVENT":
            lines.append(vtimezone.rstrip("\r\n"))
        lines.append(line)
    return "\r\n".join(lines).encode()


def corpus_items() -> list[bytes]:
    """The corpus as tests/mapping/test_corpus reads it."""
    return [data for path in sorted(CORPUS.rglob("*.ics")) for _, data in resources(path)]


def item_sets(n: int) -> dict[str, list[bytes]]:
    phone = [server_event(i, n, NOW)[1] for i in range(n)]
    made: list[Activity] = activities(n, NOW)
    return {
        "phone": phone,
        "phone-tz": [_zoned(body, ZONE, _APPLE_ZONE) for body in phone],
        "outlook-tz": [_zoned(body, "Customized Time Zone", _OUTLOOK_ZONE) for body in phone],
        "syncd": [to_ical(a, CTX) for a in made],
        "corpus": corpus_items(),
    }


# --------------------------------------------------------------------------------------------- steps


@dataclass
class Mapped:
    """What the first step hands the others: the parsed item, or the reason it was refused."""

    parsed: ParsedItem | None
    refused: str | None


def _parse(data: bytes) -> Calendar | None:
    try:
        return Calendar.from_ical(data)
    except Exception:  # noqa: BLE001 - the corpus holds items icalendar refuses; from_ical says why
        return None


def _parse_pulled(data: bytes) -> Calendar | None:
    try:
        return parse_calendar(data.decode("utf-8", errors="replace"))
    except Exception:  # noqa: BLE001 - as above
        return None


def _map(data: bytes, ref: str) -> Mapped:
    try:
        return Mapped(from_ical(data, CTX, ref), None)
    except ItemError as exc:
        return Mapped(None, str(exc))


def _fingerprints(activity: Activity) -> tuple[str, str]:
    return crm_fingerprint(activity), remote_fingerprint(activity, POLICY)


def _rules(activity: Activity) -> str | None:
    try:
        check_activity(activity)
    except ValueError as exc:  # ValidationError
        return str(exc)
    return None


def _base(activity: Activity) -> str:
    return json.dumps(activity_to_json(activity), ensure_ascii=False)


def _timed(step: Callable[[Any], Any], inputs: list[Any], rounds: int) -> tuple[float, list[Any]]:
    """Least CPU time of ``rounds`` loops over ``inputs`` (in seconds; CPU, not wall time, since the
    machine is shared), and the last loop's results."""
    best = float("inf")
    out: list[Any] = []
    for _ in range(rounds):
        started = time.process_time()
        out = [step(x) for x in inputs]
        best = min(best, time.process_time() - started)
    return best, out


@dataclass(frozen=True)
class Figures:
    name: str
    items: int
    refused: int
    us: dict[str, float]
    digest: str


def measure(name: str, items: list[bytes], rounds: int) -> Figures:
    refs = [f"{name}-{i}.ics" for i in range(len(items))]
    floor, _ = _timed(_parse, items, rounds)
    pulled, _ = _timed(_parse_pulled, items, rounds)
    mapping, mapped = _timed(lambda pair: _map(*pair), list(zip(items, refs, strict=True)), rounds)
    acts = [m.parsed.activity for m in mapped if m.parsed is not None]
    fps, prints = _timed(_fingerprints, acts, rounds)
    rules, problems = _timed(_rules, acts, rounds)
    base, bases = _timed(_base, acts, rounds)
    per = 1e6 / max(len(items), 1)
    us = {
        "icalendar parse": floor * per,
        "syncd's parse": pulled * per,
        "from_ical": mapping * per,
        "fingerprints": fps * per,
        "rules": rules * per,
        "base json": base * per,
    }
    # What the mapping adds to its own parse, and all of a pulled item's CPU against icalendar's parse.
    us["mapping"] = us["from_ical"] - us["syncd's parse"]
    us["syncd total"] = us["from_ical"] + us["fingerprints"] + us["rules"] + us["base json"]
    us["total/parse"] = us["syncd total"] / max(us["icalendar parse"], 1e-9)
    digest = hashlib.sha256()
    for m in mapped:
        digest.update((m.refused or "").encode("utf-8", "surrogatepass") + b"\0")
    for row in zip(prints, problems, bases, strict=True):
        digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\0")
    refused = sum(1 for m in mapped if m.parsed is None)
    return Figures(name, len(items), refused, us, digest.hexdigest()[:16])


def pipeline(items: list[bytes]) -> None:
    """Every step for every item, once (what --profile looks at)."""
    for i, data in enumerate(items):
        mapped = _map(data, f"item-{i}.ics")
        if mapped.parsed is not None:
            activity = mapped.parsed.activity
            _fingerprints(activity)
            _rules(activity)
            _base(activity)


def profile(items: list[bytes], top: int) -> None:
    pipeline(items[:50])  # caches filled, as after a pull's first items
    profiler = cProfile.Profile()
    profiler.enable()
    pipeline(items)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mapping_pull", description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000, help="generated items per set (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="loops per step, the fastest kept (default 3)")
    parser.add_argument("--sets", default="phone,phone-tz,outlook-tz,syncd,corpus", help="comma-separated")
    parser.add_argument("--profile", metavar="SET", help="cProfile every step over SET instead of timing")
    parser.add_argument("--top", type=int, default=30, help="profile rows shown (default 30)")
    args = parser.parse_args(argv)
    # A pull logs each kept zone and each non-UTF-8 item; here they would only bury the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    warnings.simplefilter("ignore")  # icalendar's guesses of vendor TZIDs, once per item of the corpus
    sets = item_sets(args.items)
    if args.profile:
        profile(sets[args.profile], args.top)
        return 0
    names = [s for s in args.sets.split(",") if s]
    columns = ["icalendar parse", "syncd's parse", "from_ical", "mapping", "fingerprints", "rules", "base json",
               "syncd total"]
    print(f"CPU µs per item (least of {args.rounds} loops)")
    print(f"{'set':<11}{'items':>6}{'refused':>8}" + "".join(f"{c:>17}" for c in columns) + "  total/parse  digest")
    for name in names:
        f = measure(name, sets[name], args.rounds)
        row = "".join(f"{f.us[c]:>17.0f}" for c in columns)
        print(f"{f.name:<11}{f.items:>6}{f.refused:>8}{row}{f.us['total/parse']:>13.2f}x  {f.digest}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
