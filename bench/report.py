"""The table: syncd's figure, the peer's, the ratio, the target and whether it is met."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from statistics import median

from bench.measure import Run
from bench.scenario import SizeResult
from bench.startup import Startup

#: Peak RSS target applies at this size and above.
RSS_TARGET_MB = 150


@dataclass(frozen=True)
class Row:
    n: str
    measure: str
    syncd: str
    requests: str
    rss: str
    peer: str
    peer_figure: str
    ratio: str
    target: str
    ok: str


HEAD = Row("N", "measure", "syncd", "req", "RSS MB", "peer", "peer", "ratio", "target", "met")


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _s(seconds: float) -> str:
    return f"{seconds:.3f}s" if seconds < 1 else f"{seconds:.2f}s"


def rows_for(r: SizeResult) -> list[Row]:
    n = str(r.n)
    rows: list[Row] = []
    s, v, p = r.syncd, r.vdirsyncer, r.plain

    def req(run) -> str:
        return str(run.requests.total) if run.requests is not None else "?"

    if "push" in s:
        put = p.get("put_same") or p.get("put")
        ratio = s["push"].seconds / put.seconds if put else None
        rows.append(Row(n, "initial push", _s(s["push"].seconds), req(s["push"]), f"{s['push'].rss_mb:.0f}",
                        "plain PUTs, same bytes" if "put_same" in p else "plain PUTs",
                        f"{_s(put.seconds)} {put.requests.total}r" if put else "-",
                        f"{ratio:.2f}x" if ratio else "-", "<= 1.5x plain", _verdict(ratio <= 1.5 if ratio else None)))
        if "put_same" in p and "put" in p:
            rows.append(Row(n, "initial push", "", "", "", "plain PUTs, phone events",
                            f"{_s(p['put'].seconds)} {p['put'].requests.total}r",
                            f"{s['push'].seconds / p['put'].seconds:.2f}x", "-", "-"))
    if "nochange" in s:
        nc = s["nochange"]
        vn = v.get("nochange")
        ratio = nc.seconds / vn.seconds if vn else None
        rows.append(Row(n, "no-change sync (process)", _s(nc.seconds), req(nc), f"{nc.rss_mb:.0f}",
                        "vdirsyncer sync", f"{_s(vn.seconds)} {req(vn)}r" if vn else "not run",
                        f"{ratio:.2f}x" if ratio else "-", "<= 0.5x vdirsyncer",
                        _verdict(ratio <= 0.5 if ratio else None)))
        collections = 1
        rows.append(Row(n, "no-change requests", "", req(nc), "", "", "", "", f"{collections}/collection",
                        _verdict(nc.requests.total <= collections if nc.requests else None)))
    if r.daemon:
        best = min(r.daemon)
        dr = r.daemon_requests.total if r.daemon_requests else "?"
        floor = p.get("sync")
        rows.append(Row(n, "daemon no-change pass", f"{best * 1000:.1f}ms", str(dr), "",
                        "server: 1 sync REPORT" if floor else "", f"{floor.seconds * 1000:.1f}ms 1r" if floor else "",
                        f"{best / floor.seconds:.1f}x" if floor else "", "< 20 ms/binding", _verdict(best < 0.020)))
        if floor:
            rows.append(Row(n, "daemon pass minus server", f"{(best - floor.seconds) * 1000:.1f}ms", "", "", "", "",
                            "", "< 20 ms/binding", _verdict(best - floor.seconds < 0.020)))
    if "changed" in s:
        ch = s["changed"]
        k = r.changes
        rows.append(Row(n, f"changed ({k}+{k})", _s(ch.seconds), req(ch), f"{ch.rss_mb:.0f}", "", "", "",
                        f"<= {k + 5} req", _verdict(ch.requests.total <= k + 5 if ch.requests else None)))
    if "pull" in s:
        pl = s["pull"]
        vf = v.get("first")
        ratio = median(r.pull_ratios["vdirsyncer"]) if r.pull_ratios.get("vdirsyncer") else None
        rows.append(Row(n, "initial pull", _s(pl.seconds), req(pl), _rss(pl), "vdirsyncer 1st sync",
                        f"{_s(vf.seconds)} {req(vf)}r" if vf else "not run", f"{ratio:.2f}x" if ratio else "-",
                        "<= 1.0x vdirsyncer", _verdict(ratio <= 1.0 if ratio else None)))
        rep = p.get("report")
        if rep:
            plain = median(r.pull_ratios["plain"])
            rows.append(Row(n, "initial pull", "", "", "", "one REPORT (all N)",
                            f"{_s(rep.seconds)} {rep.requests.total}r", f"{plain:.1f}x", "<= 3x plain",
                            _verdict(plain <= 3)))
        rounds = len(r.pull_ratios.get("plain", ()))
        if rounds > 1:
            rows.append(Row(n, "initial pull", f"{rounds} rounds", "", "", "ratios: median of alternated rounds",
                            "", "", "", ""))
    if "afterpull" in s:
        ap = s["afterpull"]
        rows.append(Row(n, "pass after the pull", _s(ap.seconds), req(ap), f"{ap.rss_mb:.0f}", "", "", "",
                        "1 req", _verdict(ap.requests.total == 1 if ap.requests else None)))
    if s:
        peak = max(max(run.rss_mb, run.tree_mb) for run in s.values())
        rows.append(Row(n, "peak RSS (syncd phases)", "", "", f"{peak:.0f}",
                        "vdirsyncer" if v else "", f"{max(x.rss_mb for x in v.values()):.0f} MB" if v else "", "",
                        f"< {RSS_TARGET_MB} MB @50k", _verdict(peak < RSS_TARGET_MB if r.n >= 50_000 else None)))
    return rows


def _rss(run: Run) -> str:
    """Peak RSS; ``largest/all`` when the phase ran processes of its own (syncd's parse workers)."""
    if run.tree_mb > run.rss_mb + 1:
        return f"{run.rss_mb:.0f}/{run.tree_mb:.0f}"
    return f"{run.rss_mb:.0f}"


def fleet_rows(f: dict) -> list[Row]:
    """The many-bindings daemon cycle (:mod:`bench.fleet`)."""
    b, store = str(f["bindings"]), f["store"]
    steady, first = f["steady_cycle_s"], f["first_cycle_s"]
    return [
        Row(b, f"daemon cycle, {store}, no change", _s(steady), "", "", f"{f['passes_at_once']} at once", "", "",
            "< 10 s @1000", _verdict(steady < 10 if f["bindings"] >= 1000 else None)),
        Row(b, f"daemon cycle, {store}, after mass 1st sync", _s(first), "", "", "the steady cycle", _s(steady),
            f"{first / steady:.2f}x", "< 2x steady", _verdict(first / steady < 2)),
        Row(b, f"daemon, {store}, mass first sync", _s(f["mass_first_sync_s"]), "", "",
            f"{f['events']} events/binding", "", "", "-", "-"),
    ]


def startup_rows(st: Startup) -> list[Row]:
    unwanted = {"exchangelib", "msal", "syncd.connectors.exchange", "syncd.connectors.graph", "rich", "caldav",
                "niquests", "urllib3", "requests", "yaml"}
    return [
        Row("", "syncd --version (best of 5)", _s(st.version_seconds), "", "", "", "", "", "< 0.3 s",
            _verdict(st.version_seconds < 0.3)),
        Row("", "sync (CalDAV) imports", ",".join(st.sync_loaded) or "-", "", "", "", "", "",
            "no exchange, graph, rich, caldav lib", _verdict(not unwanted & set(st.sync_loaded))),
        Row("", "sync (CalDAV) import time", _s(st.import_seconds), "", "", "costliest",
            ", ".join(f"{name} {seconds:.2f}" for name, seconds in st.import_top[:4]), "", "-", "-"),
    ]


def render(rows: list[Row]) -> str:
    table = [HEAD, *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in Row.__dataclass_fields__]
    lines = []
    for i, row in enumerate(table):
        cells = [getattr(row, f).ljust(w) for f, w in zip(Row.__dataclass_fields__, widths, strict=True)]
        lines.append(" | ".join(cells).rstrip())
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> str:
    import os

    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"
