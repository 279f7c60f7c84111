"""``python -m bench.runaway [--case NAME ...] [--timeout S]``: what one hostile recurring item costs.

Each case is one calendar item whose rule expands (almost) without end, never, or carries a huge list
of EXDATEs or overrides, taken through what a pass does with it: ``from_ical``, the window check for a
one-year window (``has_occurrence``; before bounded expansion, ``bool(occurrences(...))``), the list
of that window's occurrences, and the Exchange conversion. Each phase runs in a process of its own,
killed at ``--timeout``. Printed per phase: wall time, the tracemalloc peak of the phase, the peak RSS
of its process (also of one that was killed), and the answer.

Figures, not a test: tracemalloc slows Python down, so compare rows with each other, not with a pass.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

WINDOW = (datetime(2026, 6, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))
"""One year ahead of a fixed "now", so every run checks the same thing."""

_ZONE = "Europe/Amsterdam"
_REPEAT_BELOW = 20.0
"""Seconds; a phase slower than this is not run again under tracemalloc (the RSS column still shows it)."""


def _dt(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _item(rule: str, start: datetime, extra: str = "", components: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//runaway//EN\r\n"
        "BEGIN:VEVENT\r\nUID:runaway@bench\r\nDTSTAMP:20260501T000000Z\r\n"
        f"DTSTART;TZID={_ZONE}:{_dt(start)}\r\nDTEND;TZID={_ZONE}:{_dt(start + timedelta(minutes=30))}\r\n"
        f"SUMMARY:runaway\r\nRRULE:{rule}\r\n{extra}END:VEVENT\r\n{components}END:VCALENDAR\r\n"
    )


def _exdates(start: datetime, n: int, step: timedelta) -> str:
    # Folded in chunks of 100 per property: a single 20000-value line is legal but unlike any client.
    values = [_dt(start + i * step) for i in range(n)]
    return "".join(
        f"EXDATE;TZID={_ZONE}:{','.join(values[i : i + 100])}\r\n" for i in range(0, n, 100)
    )


def _overrides(start: datetime, n: int, step: timedelta) -> str:
    parts = []
    for i in range(n):
        rid = start + i * step
        moved = rid + timedelta(hours=1)
        parts.append(
            "BEGIN:VEVENT\r\nUID:runaway@bench\r\nDTSTAMP:20260501T000000Z\r\n"
            f"RECURRENCE-ID;TZID={_ZONE}:{_dt(rid)}\r\nDTSTART;TZID={_ZONE}:{_dt(moved)}\r\n"
            f"DTEND;TZID={_ZONE}:{_dt(moved + timedelta(minutes=30))}\r\nSUMMARY:moved {i}\r\nEND:VEVENT\r\n"
        )
    return "".join(parts)


def _cases() -> dict[str, Callable[[], str]]:
    inside = datetime(2026, 6, 2, 9, 0)
    before = datetime(2026, 3, 1, 9, 0)
    return {
        "weekly (control)": lambda: _item("FREQ=WEEKLY;BYDAY=TU,TH", inside),
        "daily since 1990 (control)": lambda: _item("FREQ=DAILY", datetime(1990, 1, 1, 9, 0)),
        "SECONDLY;COUNT=1000000": lambda: _item("FREQ=SECONDLY;COUNT=1000000", inside),
        "SECONDLY forever": lambda: _item("FREQ=SECONDLY", inside),
        "SECONDLY from before the window": lambda: _item("FREQ=SECONDLY", before),
        "SECONDLY;COUNT=1000000 from before": lambda: _item("FREQ=SECONDLY;COUNT=1000000", before),
        "MINUTELY;BYSECOND=0..59": lambda: _item("FREQ=MINUTELY;BYSECOND=" + ",".join(map(str, range(60))), inside),
        "YEARLY Feb 30": lambda: _item("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", inside),
        "DAILY Feb 30": lambda: _item("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", inside),
        "SECONDLY Feb 30": lambda: _item("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30", inside),
        "MONTHLY 6th Monday (never)": lambda: _item("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6", before),
        "HOURLY, 20000 EXDATEs": lambda: _item("FREQ=HOURLY", inside, _exdates(inside, 20_000, timedelta(hours=1))),
        "DAILY, 2000 overrides": lambda: _item(
            "FREQ=DAILY", inside, components=_overrides(inside, 2000, timedelta(days=1))
        ),
    }


def _phase(run: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """Timed without tracemalloc (it slows Python down several times), then run again under it for
    the peak, unless the first run was already too slow to repeat."""
    started = time.perf_counter()
    try:
        value = run()
        answer: Any = value
    except Exception as exc:  # noqa: BLE001 - a refusal is an answer the table shows
        value, answer = None, f"{type(exc).__name__}: {str(exc)[:80]}"
    seconds = time.perf_counter() - started
    peak_mb: float | None = None
    if seconds < _REPEAT_BELOW:
        tracemalloc.start()
        try:
            run()
        except Exception:  # noqa: BLE001, S110 - the first run reported it
            pass
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {"seconds": seconds, "peak_mb": peak_mb, "answer": answer}, value


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"{len(value)} occurrences"
    return str(value)


PHASES = ("from_ical", "window check", "occurrences()", "to_ews_recurrence")


def run_phase(name: str, phase: str) -> dict[str, Any]:
    """One phase of one case, in this process (the item is mapped first, outside the figures)."""
    from syncd.mapping import occurrences as occ_module
    from syncd.mapping.context import MappingContext
    from syncd.mapping.ews_recurrence import to_ews_recurrence
    from syncd.mapping.ical import from_ical
    from syncd.model import CrmUser

    text = _cases()[name]()
    ctx = MappingContext(owner=CrmUser("owner@example.com", "Owner", _ZONE))
    if phase == "from_ical":
        figures, _ = _phase(lambda: from_ical(text, ctx, "runaway.ics"))
        if not str(figures["answer"]).startswith("ItemError"):
            figures["answer"] = "mapped"
        return figures
    activity = from_ical(text, ctx, "runaway.ics").activity
    assert activity.recurrence is not None and activity.start is not None
    if phase == "window check":
        check = getattr(occ_module, "has_occurrence", None)
        if check is None:  # before bounded expansion the engine took bool() of the occurrence list
            return _phase(lambda: bool(occ_module.occurrences(activity, *WINDOW)))[0]
        return _phase(lambda: check(activity, *WINDOW))[0]
    if phase == "occurrences()":
        figures, found = _phase(lambda: occ_module.occurrences(activity, *WINDOW))
        if found is not None:
            figures["answer"] = _describe(found)
        return figures
    rule, start = activity.recurrence.rrule, activity.start
    figures, pattern = _phase(lambda: to_ews_recurrence(rule, start, ZoneInfo(_ZONE)))
    if pattern is not None:
        figures["answer"] = type(pattern.pattern).__name__
    return figures


def _high_water_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _child(name: str, phase: str, timeout: float) -> tuple[dict[str, Any] | str, float]:
    """(figures, or why there are none; peak RSS MB of the child, also of one killed at the timeout)."""
    argv = [sys.executable, "-m", "bench.runaway", "--child", name, "--phase", phase]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        rss = _high_water_mb(proc.pid)
        proc.kill()
        proc.communicate()
        return f"killed after {timeout:.0f} s", rss
    if proc.returncode != 0 or not out.strip():
        return f"exited {proc.returncode}", float("nan")
    result = json.loads(out.strip().splitlines()[-1])
    return result["figures"], result["rss_mb"]


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runaway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", choices=sorted(_cases()), help="only this case (repeatable)")
    parser.add_argument("--timeout", type=float, default=300, help="kill a phase after this many seconds")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import resource

        figures = run_phase(args.child, args.phase)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"figures": figures, "rss_mb": rss}, default=_describe))
        return 0
    from syncd import __version__

    print(f"syncd {__version__}; window {WINDOW[0]:%Y-%m-%d}..{WINDOW[1]:%Y-%m-%d}; "
          "time without tracemalloc, peak MB = tracemalloc peak of the phase, RSS MB = the phase's process")
    print(f"{'case':<36} {'phase':<18} {'time':>10} {'peak MB':>8} {'RSS MB':>7}  answer")
    for name in args.case or list(_cases()):
        for phase in PHASES:
            result, rss = _child(name, phase, args.timeout)
            if isinstance(result, str):
                print(f"{name:<36} {phase:<18} {'-':>10} {'-':>8} {rss:>7.0f}  {result}", flush=True)
                continue
            figures = result
            peak = "-" if figures["peak_mb"] is None else f"{figures['peak_mb']:.1f}"
            answer = _describe(figures["answer"])
            print(f"{name:<36} {phase:<18} {_fmt(figures['seconds']):>10} {peak:>8} {rss:>7.0f}  {answer}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())



