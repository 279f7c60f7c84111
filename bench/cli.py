"""``python -m bench [--items N ...] [--large N] [--fleet N] [--rounds R] [--no-peers] [--no-exchange]
[--no-graph] [--no-startup] [--push-max N] [--budget S]``.

PostgreSQL figures (the daemon cycle) need ``SYNCD_BENCH_PG_URL`` or ``SYNCD_TEST_PG_URL``: an admin URL
whose role may CREATE DATABASE; a fresh database is made and dropped."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import report, startup
from bench.measure import run
from bench.scenario import USER, Deadline, Scenario, make_store, python_env, write_syncd_config
from syncd import __version__
from syncd.connectors.radicale_embedded import EmbeddedRadicale


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 5000],
                        help="sizes to measure (default 1000 5000; 200 for a quick look)")
    parser.add_argument("--large", type=int, default=0, metavar="N",
                        help="also a pull of N events alone, for its peak memory (the target is at 50000; "
                             "off by default: it takes minutes)")
    parser.add_argument("--fleet", type=int, default=1000, metavar="BINDINGS",
                        help="the daemon cycle over this many bindings, on SQLite and (with a PostgreSQL URL in "
                             "the environment) PostgreSQL (default 1000; 0 to skip)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternated rounds of the initial pull against its references (default 3)")
    parser.add_argument("--no-peers", action="store_true", help="skip vdirsyncer")
    parser.add_argument("--no-exchange", action="store_true", help="skip the Exchange (EWS test server) figures")
    parser.add_argument("--no-graph", action="store_true", help="skip the Microsoft Graph (test server) figures")
    parser.add_argument("--push-max", type=int, default=2000,
                        help="largest N pushed by PUT (Radicale's PUT costs O(collection size); default 2000)")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up and import figures")
    parser.add_argument("--budget", type=float, default=900, help="stop after this many seconds (default 900)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    deadline = Deadline(args.budget)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    rows: list[report.Row] = []
    notes: list[str] = []
    failed = False
    try:
        with EmbeddedRadicale(root / "radicale") as radicale:
            radicale.add_user(USER, password)
            _say(f"Radicale at {radicale.url}; work folder {root}")
            probe = write_syncd_config(root / "startup.toml", root / "startup.sqlite3",
                                       radicale.make_calendar(USER, "startup"), password)
            make_store(probe, [])
            if not args.no_startup:
                rows += report.startup_rows(startup.measure(probe))
            scenario = Scenario(radicale, password, root, deadline, peers=not args.no_peers,
                                push_max=args.push_max, say=_say, rounds=max(1, args.rounds))
            sizes = [(n, False) for n in args.items] + ([(args.large, True)] if args.large else [])
            for n, pull_only in sizes:
                try:
                    result = scenario.measure(n, pull_only=pull_only)
                except Exception as exc:  # noqa: BLE001 - one size failing still prints the others
                    failed = True
                    notes.append(f"N={n}: stopped: {exc}")
                    _say(f"N={n} failed: {exc}")
                    continue
                rows += report.rows_for(result)
                notes += result.problems
                notes.append(f"N={n}: load average {result.load_before[0]:.2f} before, "
                             f"{result.load_after[0]:.2f} after")
        if args.fleet:
            pg_url = _pg_url()
            if pg_url is None:
                notes.append("fleet: no PostgreSQL figures (set SYNCD_BENCH_PG_URL or SYNCD_TEST_PG_URL)")
            for url in [None, pg_url] if pg_url else [None]:
                try:
                    rows += report.fleet_rows(_fleet(args.fleet, url, deadline))
                except Exception as exc:  # noqa: BLE001 - one store failing still prints the rest
                    failed = True
                    notes.append(f"fleet ({'postgresql' if url else 'sqlite'}): stopped: {exc}")
        if not args.no_exchange:
            from bench import exchange

            ex_rows, ex_notes = exchange.measure(deadline, min(1000, max(args.items)), root, say=_say)
            rows += ex_rows
            notes += ex_notes
        if not args.no_graph:
            from bench import graph

            graph_rows, graph_notes = graph.measure(deadline, min(1000, max(args.items)), root, say=_say)
            rows += graph_rows
            notes += graph_notes
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"syncd {__version__} benchmark; {report.machine()}; vdirsyncer "
          f"{'not run' if args.no_peers else _vdir_version()}")
    print(report.render(rows))
    for note in notes:
        print(f"note: {note}")
    return 1 if failed else 0


def _pg_url() -> str | None:
    return os.environ.get("SYNCD_BENCH_PG_URL") or os.environ.get("SYNCD_TEST_PG_URL") or None


def _fleet(bindings: int, pg_url: str | None, deadline: Deadline) -> dict:
    """:mod:`bench.fleet` in a process of its own (its imports and threads do not touch this one's)."""
    argv = [sys.executable, "-m", "bench.fleet", "--bindings", str(bindings)] + (["--pg", pg_url] if pg_url else [])
    _say(f"fleet: {bindings} bindings on {'PostgreSQL' if pg_url else 'SQLite'}")
    done = run(argv, log=None, timeout=deadline.timeout(120 + bindings * 1.0), env=python_env())
    return json.loads(done.output.strip().splitlines()[-1])  # it exits non-zero on a wrong count


def _vdir_version() -> str:
    from bench import vdirsyncer_peer

    try:
        return vdirsyncer_peer.version()
    except Exception as exc:  # noqa: BLE001
        return f"? ({exc})"
