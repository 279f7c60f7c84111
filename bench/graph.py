"""Microsoft Graph figures against the Graph test server of this repository (``tests/graph_server``),
beside the Exchange (EWS) ones of :mod:`bench.exchange` and in the same phases.

As there, the server is test code imported from the repository's ``tests/`` folder (a source checkout is
needed), runs in the bench's process on loopback, and syncd runs as ``python -m syncd sync`` in a
subprocess per phase. Requests are counted by the server: HTTP requests on the wire (a ``$batch`` is one,
token and discovery calls included), and apart from them the sub-requests the batches carried."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import data
from bench.exchange import _add_user
from bench.measure import Run, run
from bench.report import Row, _s, _verdict
from bench.scenario import REPO, Deadline, counts_of, make_store, python_env

TENANT = "bench-tenant"
APP_ID = "bench-0000-0000-0000-graph"
SECRET = "bench-Gr4ph-S3cret"
_WORD = re.compile(r"^[A-Za-z$]+$")


def _config(path: Path, store: Path, server: Any, user: str) -> Path:
    remote = {"type": "graph", "tenant_id": TENANT, "client_id": APP_ID, "client_secret": SECRET, "user": user,
              "authority_url": server.authority_url, "graph_url": server.graph_url,
              "verify_tls": str(server.ca_path)}
    inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in remote.items())
    path.write_text(
        f'[store]\nurl = {json.dumps(f"sqlite:///{store}")}\n\n[logging]\nlevel = "warning"\nformat = "console"\n\n'
        f'[[bindings]]\nname = "bench"\nowner = {json.dumps(user)}\nremote = {{ {inline} }}\n',
        encoding="utf-8",
    )
    return path


def _event(i: int, n: int, now: datetime) -> dict[str, Any]:
    start = data._slot(i, n, now).astimezone(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S"
    return {"subject": f"Outlook meeting #{i}", "body": {"contentType": "text", "content": f"Agenda item {i}."},
            "start": {"dateTime": f"{start:{fmt}}", "timeZone": "UTC"},
            "end": {"dateTime": f"{start + timedelta(hours=1):{fmt}}", "timeZone": "UTC"},
            "location": {"displayName": f"Room {i % 12}"}}


def _operation(method: str, path: str) -> str:
    """``GET events/{id}`` from ``GET /v1.0/users/x@y/events/AAMk...``: ids folded so calls group by kind."""
    parts = path.strip("/").removeprefix("v1.0/").split("/")
    if "users" in parts:
        parts = parts[parts.index("users") + 2:]
    elif "oauth2" in parts or "discovery" in parts or ".well-known" in parts:
        return f"{method} entra {parts[-1]}"
    return f"{method} " + "/".join(p if _WORD.match(p) else "{id}" for p in parts)


def measure(deadline: Deadline, n: int, root: Path, say: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    if importlib.util.find_spec("syncd.connectors.graph") is None:
        return [Row("", "Graph (test server)", "not measured: no Graph connector yet", "", "", "",
                    "", "", "", "-")], []
    tests = REPO / "tests"
    if not (tests / "graph_server").is_dir():
        return [], ["Graph not measured: tests/graph_server is not in this checkout"]
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    from graph_server import GraphServer  # type: ignore[import-not-found]

    work = root / "graph"
    work.mkdir()
    now = datetime.now(UTC)
    rows: list[Row] = []
    notes: list[str] = []
    owner, phone_owner = data.OWNER, "outlook@bench.example"
    with GraphServer(tenant_id=TENANT) as server:
        server.add_app(APP_ID, secret=SECRET)
        server.add_mailbox(owner)
        server.add_mailbox(phone_owner)

        def phase(config: Path) -> tuple[Run, Counter[str], Counter[str]]:
            before = len(server.requests)
            result = run([sys.executable, "-m", "syncd", "--config", str(config), "sync"], log=None,
                         timeout=deadline.timeout(60 + n * 0.2), env=python_env())
            wire: Counter[str] = Counter()
            batched: Counter[str] = Counter()
            for record in server.requests[before:]:
                (batched if record.batch else wire)[_operation(record.method, record.path)] += 1
            return result, wire, batched

        push_cfg = _config(work / "push.toml", work / "push.sqlite3", server, owner)
        make_store(push_cfg, data.activities(n, now))
        pull_cfg = _config(work / "pull.toml", work / "pull.sqlite3", server, phone_owner)
        make_store(pull_cfg, [])
        _add_user(pull_cfg, phone_owner)
        outlook = server.client(phone_owner)  # as the user in Outlook: not recorded in server.requests
        for i in range(n):
            outlook.post("events", json=_event(i, n, now))

        per = 1000 / n
        for label, config, expected, target, limit in (
            ("initial push", push_cfg, {"remote_created": n}, "<= 1 req/100 items", n / 100),
            ("no-change pass", push_cfg, {}, "1 req/folder", 2),
            ("initial pull", pull_cfg, {"crm_created": n}, "<= 1 req/100 items", n / 100),
        ):
            result, wire, batched = phase(config)
            got = counts_of(result.output)
            if any(got.get(k) != v for k, v in expected.items()) or any(
                    v for k, v in got.items() if k not in expected):
                notes.append(f"Graph {label}: expected {expected}, got {got or result.output[-300:]}")
            total = sum(wire.values())
            # MSAL's discovery and token calls come once per process (a daemon reuses its token): the
            # verdict is on the Graph calls, the req column shows every request.
            api = sum(v for k, v in wire.items() if " entra " not in k)
            say(f"Graph {label}: {result.seconds:.2f}s, {total} requests ({dict(wire)}), "
                f"{sum(batched.values())} in batches")
            scaled = "" if label == "no-change pass" else f"{_s(result.seconds * per)} {total * per:.0f}r"
            rows.append(Row(str(n), f"Graph {label}", _s(result.seconds), str(total), f"{result.rss_mb:.0f}",
                            "per 1,000 items" if scaled else "", scaled, "", f"{target} + token",
                            _verdict(api <= limit)))
            notes.append(f"Graph {label} requests: " + ", ".join(f"{k} {v}" for k, v in sorted(wire.items()))
                         + (" (inside batches: " + ", ".join(f"{k} {v}" for k, v in sorted(batched.items())) + ")"
                            if batched else ""))
        if server.response_problems or server.server_errors:
            notes.append(f"Graph server: {len(server.response_problems)} invalid answers, "
                         f"{len(server.server_errors)} server errors")
    return rows, notes
