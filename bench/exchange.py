"""Exchange figures against the EWS test server of this repository (``tests/ews_server``).

That server is test code, not part of an installed syncd: the bench imports it by putting the
repository's ``tests/`` folder on ``sys.path`` (so this part needs a source checkout). It runs in the
bench's process, on loopback; syncd runs as ``python -m syncd sync`` in a subprocess per phase, as for
CalDAV. Requests are counted by the server (one per SOAP call)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import data
from bench.measure import Run, run
from bench.report import Row, _s, _verdict
from bench.scenario import REPO, Deadline, counts_of, make_store, python_env

PASSWORD = "bench-Pa55"
EXCHANGE_2016 = "15.1"


def _config(path: Path, store: Path, url: str, smtp: str) -> Path:
    remote = {"type": "exchange", "service_endpoint": url, "auth_type": "basic", "username": smtp,
              "password": PASSWORD, "primary_smtp_address": smtp, "version": EXCHANGE_2016}
    inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in remote.items())
    path.write_text(
        f'[store]\nurl = {json.dumps(f"sqlite:///{store}")}\n\n[logging]\nlevel = "warning"\nformat = "console"\n\n'
        f'[[bindings]]\nname = "bench"\nowner = {json.dumps(smtp)}\nremote = {{ {inline} }}\n',
        encoding="utf-8",
    )
    return path


def _event_xml(i: int, n: int, now: datetime) -> str:
    start = data._slot(i, n, now).astimezone(UTC)
    end = start.replace(hour=start.hour + 1) if start.hour < 23 else start
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (f"<t:CalendarItem><t:Subject>Outlook meeting #{i}</t:Subject>"
            f"<t:Body BodyType=\"Text\">Agenda item {i}.</t:Body>"
            f"<t:Start>{start:{fmt}}</t:Start><t:End>{end:{fmt}}</t:End>"
            f"<t:Location>Room {i % 12}</t:Location></t:CalendarItem>")


def measure(deadline: Deadline, n: int, root: Path, say: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    if importlib.util.find_spec("syncd.connectors.exchange") is None:
        return [Row("", "Exchange (EWS test server)", "not measured: no Exchange connector yet", "", "", "",
                    "", "", "", "-")], []
    tests = REPO / "tests"
    if not (tests / "ews_server").is_dir():
        return [], ["Exchange not measured: tests/ews_server is not in this checkout"]
    sys.path.insert(0, str(tests))
    from ews_server import EwsServer  # type: ignore[import-not-found]

    work = root / "exchange"
    work.mkdir()
    now = datetime.now(UTC)
    rows: list[Row] = []
    notes: list[str] = []
    owner, phone_owner = data.OWNER, "outlook@bench.example"
    with EwsServer(validate_responses=False) as server:
        server.add_mailbox(owner, PASSWORD)
        server.add_mailbox(phone_owner, PASSWORD)

        def phase(config: Path) -> tuple[Run, Counter[str]]:
            before = len(server.requests)
            result = run([sys.executable, "-m", "syncd", "--config", str(config), "sync"], log=None,
                         timeout=deadline.timeout(60 + n * 0.2), env=python_env())
            return result, Counter(op or "?" for op in server.operations()[before:])

        push_cfg = _config(work / "push.toml", work / "push.sqlite3", server.url, owner)
        make_store(push_cfg, data.activities(n, now))
        pull_cfg = _config(work / "pull.toml", work / "pull.sqlite3", server.url, phone_owner)
        make_store(pull_cfg, [])
        _add_user(pull_cfg, phone_owner)
        for i in range(n):
            server.put_item(phone_owner, "calendar", _event_xml(i, n, now))

        per = 1000 / n
        for label, config, expected, target, limit in (
            ("initial push", push_cfg, {"remote_created": n}, "<= 1 req/100 items", n / 100),
            ("no-change pass", push_cfg, {}, "1 req/folder", 2),
            ("initial pull", pull_cfg, {"crm_created": n}, "<= 1 req/100 items", n / 100),
        ):
            result, ops = phase(config)
            got = counts_of(result.output)
            if any(got.get(k) != v for k, v in expected.items()) or any(
                    v for k, v in got.items() if k not in expected):
                notes.append(f"Exchange {label}: expected {expected}, got {got or result.output[-300:]}")
            total = sum(ops.values())
            say(f"Exchange {label}: {result.seconds:.2f}s, {total} requests ({dict(ops)})")
            scaled = "" if label == "no-change pass" else f"{_s(result.seconds * per)} {total * per:.0f}r"
            rows.append(Row(str(n), f"Exchange {label}", _s(result.seconds), str(total), f"{result.rss_mb:.0f}",
                            "per 1,000 items" if scaled else "", scaled, "", target, _verdict(total <= limit)))
            notes.append(f"Exchange {label} requests: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    return rows, notes


def _add_user(config: Path, email: str) -> None:
    from syncd import config as config_module
    from syncd.app import App
    from syncd.model import CrmUser
    from syncd.store import repository

    app = App(config_module.load(config))
    with app.session() as session:
        repository.add_user(session, CrmUser(email, "Outlook User", data.ZONE))
        session.commit()
    app.engine.dispose()
