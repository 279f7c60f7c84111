"""One size N, end to end, on one Radicale: syncd's four phases, the plain client, vdirsyncer.

Each syncd phase is ``python -m syncd --config ... sync`` in its own process, as a user or cron would
run it, so wall time includes start-up, and peak RSS is that process's alone."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import data, vdirsyncer_peer
from bench.measure import Run, run
from bench.plainclient import PlainClient
from bench.requestlog import RequestLog, Requests
from syncd.connectors.radicale_embedded import EmbeddedRadicale

USER = "bench"
CHANGES = 50
"""Items changed on each side in the "changed" phase (fewer below N = 200)."""
REPO = Path(__file__).resolve().parent.parent
REPORT_MAX = 10_000
"""Events Radicale serves in one calendar-data REPORT at most (``[reporting] max_expand_occurrence``)."""
_SUMMARY = re.compile(
    r"to calendar (\d+) created, (\d+) updated, (\d+) deleted; to CRM (\d+) created, (\d+) updated, (\d+) deleted; "
    r"(\d+) conflicts, (\d+) errors"
)
_KEYS = ("remote_created", "remote_updated", "remote_deleted", "crm_created", "crm_updated", "crm_deleted",
         "conflicts", "errors")


@dataclass(frozen=True)
class Timed:
    """A figure measured inside the bench process (plain client, daemon pass)."""

    seconds: float
    requests: Requests


@dataclass
class SizeResult:
    n: int
    load_before: tuple[float, float, float]
    syncd: dict[str, Run] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    daemon: list[float] = field(default_factory=list)
    daemon_requests: Requests | None = None
    plain: dict[str, Timed] = field(default_factory=dict)
    vdirsyncer: dict[str, Run] = field(default_factory=dict)
    pull_ratios: dict[str, list[float]] = field(default_factory=dict)
    """Per round of the alternated initial pull: syncd's seconds over each reference's."""
    changes: int = 0
    problems: list[str] = field(default_factory=list)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def timeout(self, wanted: float) -> float:
        left = self.end - time.monotonic()
        if left <= 5:
            raise TimeoutError("the bench ran out of its time budget")
        return min(wanted, left)


def python_env() -> dict[str, str]:
    """Children import ``bench`` from this checkout and ``syncd`` from the same interpreter, with
    bytecode caches as an installed syncd has them: under PYTHONDONTWRITEBYTECODE every process
    would compile syncd's modules from source again (0.2-0.5 s of each ``syncd sync``)."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO), "PYTHONDONTWRITEBYTECODE": ""}


def write_syncd_config(path: Path, store: Path, calendar_url: str, password: str) -> Path:
    path.write_text(
        f"""[store]
url = {json.dumps(f"sqlite:///{store}")}

[logging]
level = "warning"
format = "console"

[[bindings]]
name = "bench"
owner = {json.dumps(data.OWNER)}

[bindings.remote]
type = "caldav"
url = {json.dumps(calendar_url)}
username = {json.dumps(USER)}
password = {json.dumps(password)}
timeout = 300
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def make_store(config_path: Path, activities: list) -> None:
    from syncd import config as config_module
    from syncd.app import App
    from syncd.model import CrmUser
    from syncd.store import repository
    from syncd.store.importer import import_activities

    app = App(config_module.load(config_path))
    app.ensure_schema()
    with app.session() as session:
        repository.add_user(session, CrmUser(data.OWNER, "Bench Rep", data.ZONE))
        session.commit()
        if activities:
            import_activities(session, activities)
    app.engine.dispose()


def crm_edits(config_path: Path, ids: list[str]) -> None:
    """What the CRM's users do between two passes: edit some activities (through the repository)."""
    from syncd import config as config_module
    from syncd.app import App
    from syncd.store import repository

    app = App(config_module.load(config_path))
    with app.session() as session:
        for activity in repository.get_activities(session, ids).values():
            repository.save_activity(session, data.edited(activity))
        session.commit()
    app.engine.dispose()


def crm_ids_of(config_path: Path, subjects: set[str]) -> list[str]:
    """Ids of the CRM activities with these subjects, in id order."""
    from syncd import config as config_module
    from syncd.app import App
    from syncd.store import repository

    app = App(config_module.load(config_path))
    with app.session() as session:
        found = sorted(a.id for a in repository.iter_activities(session) if a.subject in subjects)
    app.engine.dispose()
    return found


def _median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def counts_of(output: str) -> dict[str, int]:
    match = _SUMMARY.search(output)
    return dict(zip(_KEYS, map(int, match.groups()), strict=True)) if match else {}


class Scenario:
    def __init__(self, radicale: EmbeddedRadicale, password: str, root: Path, deadline: Deadline,
                 peers: bool, push_max: int, say=print, rounds: int = 3) -> None:
        self.radicale = radicale
        self.rounds = rounds
        self.push_max = push_max
        self.password = password
        self.root = root
        self.deadline = deadline
        self.peers = peers
        self.log = RequestLog(radicale.log_path)
        self.say = say

    def _timeout(self, n: int) -> float:
        return self.deadline.timeout(60 + n * 0.1)

    def syncd(self, config: Path, n: int) -> Run:
        return run([sys.executable, "-m", "syncd", "--config", str(config), "sync"], log=self.log,
                   timeout=self._timeout(n), env=python_env())

    def _check(self, result: SizeResult, phase: str, expected: dict[str, int]) -> None:
        got = result.counts.get(phase, {})
        wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
        others = {k: v for k, v in got.items() if k not in expected and v}
        if wrong or others:
            result.problems.append(f"N={result.n} {phase}: expected {expected}, got {got}")

    def measure(self, n: int, pull_only: bool = False) -> SizeResult:
        """Every phase at N; ``pull_only``: the pull, its references and the pass after it (for a
        large N, whose figure is the pull's peak memory)."""
        result = SizeResult(n, os.getloadavg())
        name = f"pull-{n}-alone" if pull_only else f"pull-{n}"  # --large may repeat one of --items
        work = self.root / name
        work.mkdir()
        now = datetime.now(UTC)
        pull_url = self.radicale.make_calendar(USER, name)
        pull_cfg = write_syncd_config(work / "pull.toml", work / "pull.sqlite3", pull_url, self.password)
        make_store(pull_cfg, [])
        # Radicale's first read of a folder filled behind its back parses every file: minutes at 50,000.
        plain = PlainClient(pull_url, USER, self.password, timeout=max(300.0, n * 0.03))

        # The phone's N events: PUT by the plain client (the server's limit for N PUTs), or, above
        # push_max, written straight into Radicale's folder (Radicale's PUT is O(collection size)).
        events = [data.server_event(i, n, now) for i in range(n)]
        if n <= self.push_max:
            result.plain["put"] = self._timed(lambda: plain.put_all(events))
            self.say(f"N={n}: plain client {n} PUTs {result.plain['put'].seconds:.1f}s")
        else:
            self._seed_on_disk(name, events)
            # Radicale parses and caches every item on its first read of the folder (~30 s at 10k),
            # which a real server has long done; so one read first, not measured.
            warm_up = time.perf_counter()
            plain.hrefs() if n > REPORT_MAX else plain.report_all()
            self.say(f"N={n}: seeded on disk; Radicale's first read took {time.perf_counter() - warm_up:.1f}s")
            result.problems.append(f"N={n}: the calendar was filled on disk, not by PUT; no push figures above "
                                   f"--push-max {self.push_max} (see docs/performance.md)")
        # Radicale builds a collection's sync history on the first sync-collection REPORT that asks for
        # it (~10 s at 5,000): once per collection, which a calendar in use has long paid. Not measured.
        plain.sync_token()
        # The initial pull into an empty store, alternated with the references on the same events
        # (the plain client's one REPORT; vdirsyncer into an empty folder), so that a load change on
        # this shared machine hits all of them alike; the medians and the median ratio are reported.
        pulls: list[Run] = []
        reports: list[Timed] = []
        firsts: list[Run] = []
        for round_ in range(self.rounds):
            if round_:
                pull_cfg = write_syncd_config(work / f"pull{round_}.toml", work / f"pull{round_}.sqlite3",
                                              pull_url, self.password)
                make_store(pull_cfg, [])
            fetched: list[int] = []
            if n <= REPORT_MAX:
                reports.append(self._timed(lambda got=fetched: got.append(plain.report_all())))
                if fetched != [n]:
                    result.problems.append(f"N={n}: the plain REPORT returned {fetched} objects, not {n}")
            self._syncd_phase(result, "pull", pull_cfg, {"crm_created": n})
            pulls.append(result.syncd["pull"])
            if reports:
                result.pull_ratios.setdefault("plain", []).append(pulls[-1].seconds / reports[-1].seconds)
            if self.peers:
                self._vdirsyncer(result, work / f"vdirsyncer{round_}", pull_url, n,
                                 nochange=not pull_only and round_ == self.rounds - 1)
                firsts.append(result.vdirsyncer["first"])
                result.pull_ratios.setdefault("vdirsyncer", []).append(pulls[-1].seconds / firsts[-1].seconds)
        plain.close()
        result.syncd["pull"] = _median(pulls)
        if reports:
            result.plain["report"] = sorted(reports, key=lambda t: t.seconds)[len(reports) // 2]
        else:
            result.problems.append(f"N={n}: no plain REPORT reference (Radicale refuses one REPORT of more than "
                                   f"{REPORT_MAX} events: its max_expand_occurrence)")
        if firsts:
            result.vdirsyncer["first"] = _median(firsts)

        # the pass right after the pull: it has nothing to read again (one sync REPORT)
        self._syncd_phase(result, "afterpull", pull_cfg, {})
        if pull_only:
            result.load_after = os.getloadavg()
            return result

        # no change (best of 3: cheap, and noisy on a shared machine), then the daemon's view of it:
        # a warm process running App.run_pass
        self._syncd_phase(result, "nochange", pull_cfg, {}, repeats=3)
        mark = self.log.mark()
        repeats = 5
        daemon = run([sys.executable, "-m", "bench.daemon_pass", str(pull_cfg), str(repeats)], log=None,
                     timeout=self._timeout(n), env=python_env())
        result.daemon = json.loads(daemon.output.strip().splitlines()[-1])["seconds"]
        total = self.log.since(mark)
        # the warm-up pass is one of repeats + 1 identical passes
        result.daemon_requests = Requests(type(total.by_method)(
            {m: round(c / (repeats + 1)) for m, c in total.by_method.items()}))
        self.say(f"N={n}: daemon no-change pass best {min(result.daemon) * 1000:.1f} ms")
        floor = PlainClient(pull_url, USER, self.password)
        token = floor.sync_token()
        result.plain["sync"] = min((self._timed(lambda: floor.sync_token(token)) for _ in range(5)),
                                   key=lambda t: t.seconds)
        floor.close()

        # k changed on each side (50 + 50 from N = 200 on), on different items (changes, not conflicts)
        k = result.changes = max(1, min(CHANGES, n // 4))
        step = n // k
        crm_ids = crm_ids_of(pull_cfg, {f"Phone meeting #{i}" for i in range(0, n, step)})[:k]
        crm_edits(pull_cfg, crm_ids)
        phone = PlainClient(pull_url, USER, self.password)
        wanted = {data.server_event(min(i + step // 2, n - 1), n, now)[0] for i in range(0, n, step)}
        wanted -= {data.server_event(i, n, now)[0] for i in range(0, n, step)}
        targets = [h for h in phone.hrefs() if h.rsplit("/", 1)[-1] in wanted][:k]
        edited_on_phone = list(phone.edit(targets, data.server_edit))
        phone.close()
        self._syncd_phase(result, "changed", pull_cfg,
                          {"remote_updated": len(crm_ids), "crm_updated": len(edited_on_phone)})

        # initial push of N CRM activities to an empty calendar
        if n <= self.push_max:
            push_url = self.radicale.make_calendar(USER, f"push-{n}")
            push_cfg = write_syncd_config(work / "push.toml", work / "push.sqlite3", push_url, self.password)
            make_store(push_cfg, data.activities(n, now))
            self._syncd_phase(result, "push", push_cfg, {"remote_created": n})
            # the server's limit for these very bodies: the plain client PUTs syncd's bytes again
            pushed = PlainClient(push_url, USER, self.password)
            bodies = pushed.fetch_all()
            pushed.close()
            same = PlainClient(self.radicale.make_calendar(USER, f"same-{n}"), USER, self.password)
            result.plain["put_same"] = self._timed(lambda: same.put_all(bodies))
            same.close()
            self.say(f"N={n}: plain client PUTs of syncd's {len(bodies)} bodies "
                     f"{result.plain['put_same'].seconds:.1f}s")
        result.load_after = os.getloadavg()
        return result

    def _seed_on_disk(self, name: str, events: list[tuple[str, bytes]]) -> None:
        folder = self.radicale.storage_dir / "collections" / "collection-root" / USER / name
        for file_name, body in events:
            (folder / file_name).write_bytes(body)

    def _timed(self, action) -> Timed:
        mark = self.log.mark()
        started = time.perf_counter()
        action()
        return Timed(time.perf_counter() - started, self.log.since(mark))

    def _syncd_phase(self, result: SizeResult, phase: str, config: Path, expected: dict[str, int],
                     repeats: int = 1) -> None:
        runs = [self.syncd(config, result.n) for _ in range(repeats)]
        best = min(runs, key=lambda r: r.seconds)
        result.syncd[phase] = best
        result.counts[phase] = counts_of(best.output)
        self._check(result, phase, expected)
        self.say(f"N={result.n}: syncd {phase}: {best.seconds:.2f}s, {best.requests.total if best.requests else '?'}"
                 f" requests, {best.rss_mb:.0f} MB (all its processes {best.tree_mb:.0f} MB)")

    def _vdirsyncer(self, result: SizeResult, root: Path, calendar_url: str, n: int, nochange: bool) -> None:
        exe = str(vdirsyncer_peer.executable())
        config = vdirsyncer_peer.write_config(root, calendar_url, USER, self.password)
        env = {"VDIRSYNCER_CONFIG": str(config)}
        result.vdirsyncer["discover"] = run([exe, "discover"], log=self.log, timeout=self._timeout(n), env=env,
                                            stdin=b"y\n" * 4)
        result.vdirsyncer["first"] = run([exe, "sync"], log=self.log, timeout=self._timeout(n), env=env)
        copied = len(list((root / "events").glob("*.ics")))
        if copied != n:
            result.problems.append(f"N={n}: vdirsyncer copied {copied} events, not {n}")
        if not nochange:
            self.say(f"N={n}: vdirsyncer first sync {result.vdirsyncer['first'].seconds:.2f}s")
            return
        runs = [run([exe, "sync"], log=self.log, timeout=self._timeout(n), env=env) for _ in range(3)]
        result.vdirsyncer["nochange"] = min(runs, key=lambda r: r.seconds)
        self.say(f"N={n}: vdirsyncer first sync {result.vdirsyncer['first'].seconds:.2f}s, "
                 f"no-change {result.vdirsyncer['nochange'].seconds:.2f}s")
