"""``python -m bench.fleet [--bindings 1000] [--events 3] [--pg URL]``: one daemon's cycle over many bindings.

Each binding is one CRM user with a calendar of their own holding ``--events`` phone events (written
into Radicale's folder, as the main bench does above --push-max). A cycle runs every binding's pass once
as ``syncd run`` does (its scheduler's pass job: the lease claimed with the pass's start, the binding's
kept connector) on the daemon's pool (``[daemon] concurrency``, its default from the CPU count), in one
warm process. Seconds are wall time; ``*_cpu_s`` is this process's CPU time (the calendar server's
is not in it), the steadier figure on a loaded machine:

- the mass first sync: every binding pulls its events into the CRM;
- the first cycle after it: each binding's CRM cursor predates the other bindings' imports, so this is
  where a binding that read every change since its cursor paid for everyone else's;
- the steady no-change cycle (best of 2), with its SQL statements and CPU milliseconds per pass.

Prints one JSON line; ``--pg`` runs on a fresh PostgreSQL database made with that admin URL (the
role must be allowed to CREATE DATABASE) and dropped afterwards."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench import data

if TYPE_CHECKING:
    from sqlalchemy import Engine

USER = "fleet"


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A new, empty database beside ``admin_url``'s; dropped on the way out."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"syncd_fleet_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop(admin, name)
        admin.dispose()


def _drop(admin: Engine, name: str) -> None:
    """Drop the bench's database. FORCE ends connections the bench left, but a role that is not a
    superuser may not end an autovacuum worker (CI's run failed on one); a plain DROP makes autovacuum
    give way by itself. A database left behind is reported, never a failed bench."""
    from sqlalchemy import exc, text

    for statement in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'DROP DATABASE IF EXISTS "{name}"'):
        for attempt in range(5):
            try:
                with admin.connect() as conn:
                    conn.execute(text(statement))
                return
            except exc.ProgrammingError:
                break
            except exc.OperationalError:
                time.sleep(0.5 * (attempt + 1))
    print(f"fleet: could not drop database {name}; drop it by hand", file=sys.stderr)


def owner(i: int) -> str:
    return f"rep-{i:05d}@fleet.example"


def _event(i: int, j: int, now: datetime) -> tuple[str, bytes]:
    """Binding ``i``'s phone event ``j``: the bench's phone event, with this binding's owner and uid."""
    name, body = data.server_event(j, 10, now)
    return f"b{i}-{name}", body.replace(data.OWNER.encode(), owner(i).encode()).replace(
        b"UID:phone-", f"UID:b{i}-phone-".encode()
    )


def _config(store_url: str, calendars: list[str], password: str) -> dict:
    bindings = [
        {"name": f"b{i:05d}", "owner": owner(i),
         "remote": {"type": "caldav", "url": url, "username": USER, "password": password}}
        for i, url in enumerate(calendars)
    ]
    return {"store": {"url": store_url}, "logging": {"level": "error"}, "bindings": bindings}


def cycle(scheduler, names: list[str], pool: ThreadPoolExecutor) -> tuple[float, float, dict[str, int]]:
    """Every binding's pass once, ``passes_at_once`` at a time, through the daemon's pass job (what
    APScheduler runs when a binding is due); the seconds, CPU seconds and the summed counts, with
    the SQL statements the cycle ran as ``statements``."""
    from sqlalchemy import event

    reports = []
    statements = [0]

    def count(*_args: object) -> None:
        statements[0] += 1

    observe = scheduler.metrics.observe
    scheduler.metrics.observe = lambda report: (reports.append(report), observe(report))
    event.listen(scheduler.app.engine, "before_cursor_execute", count)
    started, cpu = time.perf_counter(), time.process_time()
    list(pool.map(scheduler._pass, names))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    event.remove(scheduler.app.engine, "before_cursor_execute", count)
    scheduler.metrics.observe = observe
    counts: dict[str, int] = {"failed": sum(1 for r in reports if r.failed) + len(names) - len(reports)}
    for report in reports:
        for key, value in report.counts.items():
            counts[key] = counts.get(key, 0) + value
    counts["statements"] = statements[0]
    return seconds, cpu, counts


def measure(bindings: int, events: int, store_url: str | None, root: Path, say=print) -> dict:
    from syncd import config as config_module
    from syncd import logging as log_setup
    from syncd.app import App
    from syncd.connectors.radicale_embedded import EmbeddedRadicale
    from syncd.model import CrmUser
    from syncd.service.leases import Leases, worker_id
    from syncd.service.metrics import Metrics
    from syncd.service.scheduler import Scheduler
    from syncd.store import repository
    from syncd.store.db import upgrade

    password = secrets.token_urlsafe(12)
    now = datetime.now(UTC)
    log_setup.configure("error")
    with EmbeddedRadicale(root / "radicale") as radicale:
        radicale.add_user(USER, password)
        calendars = []
        for i in range(bindings):
            calendars.append(radicale.make_calendar(USER, f"cal-{i}"))
            folder = radicale.storage_dir / "collections" / "collection-root" / USER / f"cal-{i}"
            for j in range(events):
                file_name, body = _event(i, j, now)
                (folder / file_name).write_bytes(body)
        say(f"fleet: {bindings} calendars of {events} events")
        url = store_url or f"sqlite:///{root / 'fleet.sqlite3'}"
        upgrade(url)  # what `syncd db upgrade` does; the daemon refuses a PostgreSQL store without it
        app = App(config_module.parse(_config(url, calendars, password)), worker=worker_id(), keep_connectors=True)
        app.ensure_schema()
        with app.session() as session:
            for i in range(bindings):
                repository.add_user(session, CrmUser(owner(i), f"Rep {i}", data.ZONE))
            session.commit()
        workers = app.config.daemon.passes_at_once
        result: dict = {"bindings": bindings, "events": events, "store": url.split(":", 1)[0].split("+")[0],
                        "passes_at_once": workers, "load_before": os.getloadavg()[0]}
        leases = Leases(app.engine, app.worker, app.config.daemon.lease_ttl)
        scheduler = Scheduler(app, leases, Metrics())
        scheduler.reconcile(raise_errors=True)  # the first heartbeat: every lease taken
        names = [b.name for b in app.config.bindings]
        with ThreadPoolExecutor(workers) as pool:
            first_sync = cycle(scheduler, names, pool)
            result["mass_first_sync_s"], result["mass_first_sync_cpu_s"], result["mass_first_sync_counts"] = first_sync
            say(f"fleet: mass first sync {result['mass_first_sync_s']:.1f}s")
            result["first_cycle_s"], result["first_cycle_cpu_s"], result["first_cycle_counts"] = cycle(
                scheduler, names, pool)
            say(f"fleet: first cycle after it {result['first_cycle_s']:.1f}s")
            steady = [cycle(scheduler, names, pool) for _ in range(2)]
        best = min(steady, key=lambda c: c[0])
        result["steady_cycle_s"], result["steady_cycle_cpu_s"], result["steady_counts"] = best
        result["steady_statements_per_pass"] = best[2]["statements"] / bindings
        result["steady_cpu_ms_per_pass"] = 1000 * best[1] / bindings
        result["first_over_steady"] = result["first_cycle_s"] / result["steady_cycle_s"]
        result["load_after"] = os.getloadavg()[0]
        app.kept.close()
        leases.leave()
        app.engine.dispose()
    return result


def problems(result: dict) -> list[str]:
    """What the cycles did that a no-change cycle must not (the figures would then mislead)."""
    bindings, events = result["bindings"], result["events"]
    wrong = []
    first = result["mass_first_sync_counts"]
    if first.get("crm_created") != bindings * events or first.get("failed"):
        wrong.append(f"mass first sync: expected {bindings * events} crm_created, got {first}")
    for key in ("first_cycle_counts", "steady_counts"):
        extra = {k: v for k, v in result[key].items() if v and k != "statements"}
        if extra:
            wrong.append(f"{key}: a no-change cycle did {extra}")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--bindings", type=int, default=1000)
    parser.add_argument("--events", type=int, default=3, help="phone events per calendar (default 3)")
    parser.add_argument("--pg", metavar="ADMIN_URL", help="run on a fresh PostgreSQL database")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="syncd-fleet-"))

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    try:
        if args.pg:
            with pg_database(args.pg) as url:
                result = measure(args.bindings, args.events, url, root, say)
        else:
            result = measure(args.bindings, args.events, None, root, say)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["problems"] = problems(result)
    print(json.dumps(result))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
