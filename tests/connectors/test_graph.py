"""The Graph connector against the Graph test server: credentials, races, the window, throttling limits."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import load_pem_x509_certificate
from graph_fixture import APP_ID, USER, graph_fixture, remote  # noqa: F401  (the fixture `graph`)
from graph_server import GraphServer
from graph_server.tls import client_certificate

from syncd.config import GraphRemote
from syncd.connectors.graph import GraphConnector
from syncd.connectors.graph_session import MAX_CONCURRENT
from syncd.errors import PreconditionFailed, RemoteError
from syncd.mapping import graph_props as gp
from syncd.mapping.context import MappingContext
from syncd.model import Activity, CrmUser, Kind, Override, Recurrence

AMS = ZoneInfo("Europe/Amsterdam")
CTX = MappingContext(owner=CrmUser(USER, "Anna", "Europe/Amsterdam"))


def connector(server: GraphServer, clock: Any = None, **changes: Any) -> GraphConnector:
    return GraphConnector(GraphRemote(**remote(server, **changes)), CTX, clock=clock)


def appointment(activity_id: str = "42", days: int = 3, **changes: Any) -> Activity:
    start = datetime.now(AMS).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=days)
    fields: dict[str, Any] = dict(id=activity_id, kind=Kind.APPOINTMENT, subject="Kick-off", owner=USER, start=start,
                                  end=start + timedelta(hours=1), timezone="Europe/Amsterdam")
    fields.update(changes)
    return Activity(**fields)


@pytest.mark.parametrize("form", ["pem", "pfx"])
def test_an_app_certificate_signs_in(graph: GraphServer, tmp_path: Path, form: str) -> None:
    cert = client_certificate()
    graph.add_app("app-cert", secret=None, certificate=cert.cert_pem)
    if form == "pem":
        path = cert.write(tmp_path)
        settings: dict[str, Any] = {"certificate_path": str(path)}
    else:
        key = serialization.load_pem_private_key(cert.key_pem, None)
        blob = pkcs12.serialize_key_and_certificates(
            b"syncd", key, load_pem_x509_certificate(cert.cert_pem), None,  # type: ignore[arg-type]
            serialization.BestAvailableEncryption(b"pfx-Pa55"),
        )
        path = tmp_path / "app.pfx"
        path.write_bytes(blob)
        settings = {"certificate_path": str(path), "certificate_password": "pfx-Pa55"}
    assert connector(graph, client_id="app-cert", client_secret=None, **settings).check() == []


def test_a_certificate_entra_does_not_know_is_named(graph: GraphServer, tmp_path: Path) -> None:
    graph.add_app("app-cert", secret=None, certificate=client_certificate().cert_pem)
    other = client_certificate().write(tmp_path)
    [problem] = connector(graph, client_id="app-cert", client_secret=None, certificate_path=str(other)).check()
    assert "AADSTS700027" in problem and "upload its public part" in problem


def test_an_outlook_edit_after_the_read_is_a_precondition_failure(graph: GraphServer) -> None:
    conn = connector(graph)
    created = conn.create(appointment())
    [item] = conn.fetch([created.ref])
    graph.client(USER).patch(f"events/{created.ref}", json={"subject": "Edited in Outlook"})
    with pytest.raises(PreconditionFailed):
        conn.update(item.ref, item.etag, appointment(subject="Edited in the CRM"), item.raw)
    assert graph.event(created.ref)["subject"] == "Edited in Outlook"


def test_an_event_moved_out_of_the_window_is_not_taken_for_deleted(graph: GraphServer) -> None:
    conn = connector(graph)
    first = conn.changes(None, {})
    created = conn.create(appointment())
    seen = conn.changes(first.state, {})
    far = datetime.now(UTC) + timedelta(days=9 * 365)
    graph.client(USER).patch(f"events/{created.ref}", json={
        "start": gp.dtz(far, "UTC"), "end": gp.dtz(far + timedelta(hours=1), "UTC")})
    later = conn.changes(seen.state, {created.ref: seen.changed[0].etag})
    assert later.deleted == []
    assert [i.ref for i in later.changed] == [created.ref]  # its changeKey moved: read again


def test_a_window_near_its_end_is_re_based_without_deleting_or_duplicating(graph: GraphServer) -> None:
    conn = connector(graph)
    created = conn.create(appointment())
    first = conn.changes(None, {})
    known = {i.ref: i.etag for i in first.changed}
    assert list(known) == [created.ref]
    moved_on = connector(graph, clock=lambda: datetime.now(UTC) + timedelta(days=4 * 365 + 200))
    rebased = moved_on.changes(first.state, known)
    assert (rebased.changed, rebased.deleted) == ([], [])  # outside the new window, but still there
    assert len(graph.events(USER)) == 1


def test_a_task_create_without_answer_is_not_sent_twice(graph: GraphServer) -> None:
    conn = connector(graph)
    conn.changes(None, {})
    graph.fault("POST", r"/tasks$", status=201, lose_answer=True)
    task = Activity(id="t1", kind=Kind.TASK, subject="Call back", owner=USER, due=datetime.now(AMS).date())
    with pytest.raises(RemoteError):
        conn.create(task)
    assert len(graph.tasks(USER)) == 1
    found = conn.find("t1", Kind.TASK)  # how the engine recovers the create next pass
    assert found is not None and found.crm_id == "t1"


def test_a_series_written_from_the_crm_gets_its_exceptions(graph: GraphServer) -> None:
    conn = connector(graph)
    first = appointment().start
    assert isinstance(first, datetime)
    second, third = first + timedelta(weeks=1), first + timedelta(weeks=2)
    series = appointment(recurrence=Recurrence("FREQ=WEEKLY;COUNT=4", exdates=(third,), overrides=(
        Override(recurrence_id=second, start=second + timedelta(hours=2), end=second + timedelta(hours=3),
                 subject="Weekly (customer joins)"),)))
    created = conn.create(series)
    [read] = conn.fetch([created.ref])
    assert read.etag == created.etag and read.activity is not None
    assert read.activity.recurrence == series.recurrence
    # Written once, it is not written again: the exceptions Exchange holds are the ones wanted.
    graph.requests.clear()
    assert conn.update(created.ref, read.etag, series, read.raw).etag == created.etag
    assert [r.method for r in graph.requests] == []


def test_bindings_of_one_app_share_four_requests_in_flight(graph: GraphServer) -> None:
    mailboxes = [f"user{i}@example.com" for i in range(6)]
    for upn in mailboxes:
        graph.add_mailbox(upn)
    connectors = [connector(graph, user=upn) for upn in mailboxes]
    for conn in connectors:
        conn.check()  # tokens first: Entra is not Graph
    graph.latency = 0.15
    threads = [threading.Thread(target=conn.changes, args=(None, {})) for conn in connectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert graph.peak_in_flight[APP_ID] == MAX_CONCURRENT


def test_a_wrong_pfx_password_is_named_as_such(graph: GraphServer, tmp_path: Path) -> None:
    cert = client_certificate()
    graph.add_app("app-cert", secret=None, certificate=cert.cert_pem)
    key = serialization.load_pem_private_key(cert.key_pem, None)
    path = tmp_path / "app.pfx"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"syncd", key, load_pem_x509_certificate(cert.cert_pem), None,  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(b"right"),
    ))
    [problem] = connector(graph, client_id="app-cert", client_secret=None, certificate_path=str(path),
                          certificate_password="Typo-S3cret").check()
    assert "cannot be loaded (Invalid password" in problem and "certificate_password" in problem
    assert "Typo-S3cret" not in problem


def test_changed_items_are_read_twenty_to_a_batch(graph: GraphServer) -> None:
    conn = connector(graph)
    state = conn.changes(None, {}).state
    outlook = graph.client(USER)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    for i in range(25):
        outlook.post("events", json={"subject": f"Made in Outlook {i}", "start": gp.dtz(start, "UTC"),
                                     "end": gp.dtz(start + timedelta(hours=1), "UTC")})
    graph.requests.clear()
    changes = conn.changes(state, {})
    assert sorted(i.activity.subject for i in changes.changed if i.activity) == sorted(
        f"Made in Outlook {i}" for i in range(25))
    top = [r for r in graph.requests if not r.batch]
    assert [r.path.rsplit("/", 1)[-1] for r in top].count("$batch") == 2
    assert len([r for r in graph.requests if r.batch]) == 25


def test_graph_code_stays_out_of_other_passes_and_exchangelib_out_of_graph() -> None:
    probe = ("import sys, syncd.app, syncd.config; "
             "assert not any(m == 'msal' or m.startswith('syncd.connectors.graph') for m in sys.modules); "
             "import syncd.connectors.graph; assert 'exchangelib' not in sys.modules")
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_a_graph_binding_needs_exactly_one_credential_and_never_prints_it() -> None:
    from syncd import config as config_module
    from syncd.errors import ConfigError

    base = {"name": "g", "owner": USER, "remote": {"type": "graph", "tenant_id": "t", "client_id": "c", "user": USER}}
    with pytest.raises(ConfigError, match=r"give either client_secret .* or certificate_path"):
        config_module.parse({"bindings": [base]})
    both = {**base["remote"], "client_secret": "x", "certificate_path": "/etc/syncd/app.pem"}
    with pytest.raises(ConfigError, match="give either"):
        config_module.parse({"bindings": [{**base, "remote": both}]})
    with pytest.raises(ConfigError, match=r"bindings\.0\.remote\.graph_url: must be an https:// URL"):
        config_module.parse({"bindings": [{**base, "remote": {**base["remote"], "client_secret": "x",
                                                               "graph_url": "http://graph.example"}}]})
    parsed = config_module.parse({"bindings": [{**base, "remote": {
        **base["remote"], "certificate_path": "/etc/syncd/app.pfx", "certificate_password": "Pfx-Secr3t",
        "tasks": False}}]})
    remote_ = parsed.bindings[0].remote
    assert isinstance(remote_, GraphRemote) and remote_.tasks is False
    assert "Pfx-Secr3t" not in parsed.model_dump_json() and parsed.secrets() == ["Pfx-Secr3t"]
