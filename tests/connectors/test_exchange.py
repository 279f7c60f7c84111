"""The Exchange connector on its own, against the EWS test server over real HTTP(S)."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ews_fixture import (
    PASSWORD,
    Outlook,
    crm_id,
    ews_fixture,  # noqa: F401  (the fixture `ews`)
    remote,
)
from ews_server import EwsServer

from syncd.config import ExchangeRemote
from syncd.connectors.exchange import ExchangeConnector
from syncd.errors import AuthError, NotFound, PreconditionFailed, RemoteError
from syncd.mapping.context import MappingContext
from syncd.model import Activity, CrmUser, Kind

USER = "anna@example.com"
AMS = ZoneInfo("Europe/Amsterdam")
CTX = MappingContext(CrmUser(USER, "Anna", "Europe/Amsterdam"))


def meeting(activity_id: str, subject: str = "Kick-off", **extra: Any) -> Activity:
    start = datetime.now(AMS).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=3)
    fields: dict[str, Any] = {
        "id": activity_id, "kind": Kind.APPOINTMENT, "subject": subject, "owner": USER, "start": start,
        "end": start + timedelta(hours=1), "timezone": "Europe/Amsterdam", "status": "planned",
    }
    return Activity(**(fields | extra))


@pytest.fixture
def connect(ews: EwsServer) -> Iterator[Callable[..., ExchangeConnector]]:
    if ews.store.mailbox(USER) is None:
        ews.add_mailbox(USER, PASSWORD)
    made: list[ExchangeConnector] = []

    def make(server: EwsServer = ews, **changes: Any) -> ExchangeConnector:
        connector = ExchangeConnector(ExchangeRemote(**remote(server, USER, **changes)), CTX)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def test_find_uses_a_restriction_on_syncds_extended_property(ews: EwsServer, connect) -> None:
    connector = connect()
    connector.create(meeting("a1"))
    connector.create(meeting("a2", "Review"))
    ews.requests.clear()
    found = connector.find("a2", Kind.APPOINTMENT)
    assert found is not None and (found.crm_id, found.activity.subject) == ("a2", "Review")
    assert ews.operations() == ["FindItem", "GetItem"]
    assert connector.find("a3", Kind.APPOINTMENT) is None
    assert connector.find("a2", Kind.TASK) is None  # looks in the Tasks folder for a task


def test_update_with_a_stale_changekey_is_a_precondition_failure(ews: EwsServer, connect) -> None:
    connector = connect()
    written = connector.create(meeting("u1"))
    Outlook(ews, USER).edit(ews.item(written.ref), Subject="Edited in Outlook")
    with pytest.raises(PreconditionFailed):
        connector.update(written.ref, written.etag, meeting("u1", "Edited by syncd"))
    assert ews.item(written.ref).text("Subject") == "Edited in Outlook"
    [update] = [r for r in ews.requests if r.operation == "UpdateItem"]
    assert update.attributes["ConflictResolution"] == "NeverOverwrite"


def test_update_and_fetch_of_a_deleted_item(ews: EwsServer, connect) -> None:
    connector = connect()
    written = connector.create(meeting("g1"))
    ews.delete_item(written.ref)
    with pytest.raises(NotFound):
        connector.update(written.ref, written.etag, meeting("g1", "Renamed"))
    assert connector.fetch([written.ref]) == []
    connector.delete(written.ref, written.etag)  # already gone: not an error


def test_deleting_moves_to_deleted_items_without_cancellations(ews: EwsServer, connect) -> None:
    connector = connect()
    written = connector.create(meeting("d1"))
    connector.delete(written.ref, written.etag)
    assert ews.items(USER) == []
    [delete] = [r for r in ews.requests if r.operation == "DeleteItem"]
    assert (delete.attributes["DeleteType"], delete.attributes["SendMeetingCancellations"]) == (
        "MoveToDeletedItems", "SendToNone")


def test_an_appointment_that_becomes_a_task_moves_to_the_tasks_folder(ews: EwsServer, connect) -> None:
    connector = connect()
    written = connector.create(meeting("k1"))
    moved = connector.update(written.ref, written.etag, meeting("k1", kind=Kind.TASK, start=None, end=None))
    assert ews.items(USER) == [] and [crm_id(i) for i in ews.items(USER, "tasks")] == ["k1"]
    assert moved.ref != written.ref


def test_without_a_configured_version_the_server_is_asked_once(ews: EwsServer, connect) -> None:
    first = connect(version=None)
    state = first.changes(None, {}).state
    assert ews.operations()[0] == "ConvertId"
    ews.requests.clear()
    connect(version=None).changes(state, {})
    assert ews.operations() == ["SyncFolderItems", "SyncFolderItems"]


def test_close_takes_the_protocol_out_of_exchangelibs_cache(connect) -> None:
    from exchangelib.protocol import Protocol

    a, b = connect(), connect(verify_tls=False)
    a.changes(None, {})
    b.changes(None, {})
    assert a._account.protocol is not b._account.protocol  # same endpoint and login, own TLS settings
    b.close()
    with pytest.raises(KeyError):
        Protocol[b._account.protocol.config]


def test_unknown_mailbox_is_reported_in_words(ews: EwsServer, connect) -> None:
    ews.add_service_account("svc", "svc-Pa55", can_impersonate=True)
    connector = ExchangeConnector(ExchangeRemote(**remote(
        ews, "nobody@example.com", username="svc", password="svc-Pa55", access_type="impersonation")), CTX)
    try:
        with pytest.raises(AuthError, match="no mailbox nobody@example.com .*check primary_smtp_address"):
            connector.changes(None, {})
    finally:
        connector.close()


# -- TLS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def https(certificate: tuple[Path, Path]) -> Iterator[EwsServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with EwsServer(tls=context) as server:
        server.add_mailbox(USER, PASSWORD)
        yield server


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_is_verified_by_default_and_a_ca_bundle_or_false_is_per_binding(
    https: EwsServer, certificate: tuple[Path, Path], connect
) -> None:
    with pytest.raises(RemoteError, match="certificate verify failed"):
        connect(https).changes(None, {})
    assert connect(https, verify_tls=str(certificate[0])).changes(None, {}).total == 0
    assert connect(https, verify_tls=False).changes(None, {}).total == 0
    # A binding that was given nothing still refuses, whatever the others were given.
    with pytest.raises(RemoteError, match="certificate verify failed"):
        connect(https).changes(None, {})
