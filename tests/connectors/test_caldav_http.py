"""HTTP answers of real servers that Radicale does not give: refusals of one item, throttling, a 204
with a body, one UID per calendar home. Radicale on loopback behind :class:`dav_proxy.DavProxy`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dav_proxy import Answer, DavProxy, OneUidPerHome, Request, dav_proxy
from radicale_server import PASSWORD, USER, radicale, unique_name

from syncd.connectors.caldav import CalDavConfig, CalDavConnector
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.errors import AuthError, ItemError, RemoteError
from syncd.mapping.context import MappingContext
from syncd.mapping.identity import uid_for
from syncd.model import Activity, CrmUser, Kind, Participant, ParticipantKind

sys.path.insert(0, str(Path(__file__).parent.parent / "engine"))
from world import BOB, OWNER, World, meeting

__all__ = ["dav_proxy", "radicale"]  # pytest fixtures

AMS = ZoneInfo("Europe/Amsterdam")
CTX = MappingContext(owner=CrmUser(OWNER, "Anna", "Europe/Amsterdam"))
DAV_ERROR = (b'<?xml version="1.0" encoding="utf-8"?><D:error xmlns:D="DAV:" '
             b'xmlns:C="urn:ietf:params:xml:ns:caldav"><C:%s/></D:error>')


def appointment(activity_id: str, subject: str = "Kick-off") -> Activity:
    return Activity(id=activity_id, kind=Kind.APPOINTMENT, subject=subject, owner=OWNER,
                    start=datetime(2026, 3, 2, 10, tzinfo=AMS), end=datetime(2026, 3, 2, 11, tzinfo=AMS),
                    timezone="Europe/Amsterdam")


@pytest.fixture
def calendar(radicale: EmbeddedRadicale, dav_proxy: DavProxy) -> str:
    name = unique_name()
    radicale.make_calendar(USER, name, ("VEVENT", "VTODO"))
    return f"{dav_proxy.url}/{USER}/{name}/"


@pytest.fixture
def connector(calendar: str) -> Iterator[CalDavConnector]:
    caldav = CalDavConnector(CalDavConfig(calendar, None, USER, PASSWORD, "basic", timeout=5, max_backoff=10), CTX)
    yield caldav
    caldav.close()


def refuse(status: int, body: bytes = b"", *, method: str = "PUT", reason: str = "") -> object:
    def hook(request: Request) -> Answer | None:
        if request.method == method and b"Refused" in request.body + request.path.encode():
            content = "application/xml; charset=utf-8" if body.startswith(b"<?xml") else "text/plain"
            return Answer(status, [("Content-Type", content)], body)
        return None
    return hook


@pytest.mark.parametrize(("status", "body", "said"), [
    (403, b"", "HTTP 403 Forbidden)"),
    (403, DAV_ERROR % b"unique-scheduling-object-resource",
     "unique-scheduling-object-resource: another calendar of this user holds an item with this UID"),
    (400, b"Bad Request", "HTTP 400 Bad Request)"),
    (409, DAV_ERROR % b"valid-calendar-data", "valid-calendar-data: the server finds the iCalendar data invalid"),
    (415, b"", "HTTP 415 Unsupported Media Type)"),
])
def test_a_refused_item_is_that_items_error(connector: CalDavConnector, dav_proxy: DavProxy, status: int,
                                            body: bytes, said: str) -> None:
    dav_proxy.before.append(refuse(status, body))
    with pytest.raises(ItemError) as refused:
        connector.create(appointment("A1", "Refused"))
    assert f"the server refused the item (HTTP {status}" in str(refused.value) and said in str(refused.value)
    assert not isinstance(refused.value, AuthError)
    connector.create(appointment("A2", "Fine"))  # the connection and the account are fine


def test_a_refused_delete_is_that_items_error_and_a_refused_collection_is_the_bindings(
    connector: CalDavConnector, dav_proxy: DavProxy
) -> None:
    written = connector.create(appointment("A1"))
    dav_proxy.before.append(lambda r: Answer(403, [], b"") if r.method == "DELETE" else None)
    with pytest.raises(ItemError, match=r"refused the delete \(HTTP 403"):
        connector.delete(written.ref, written.etag)
    dav_proxy.before[:] = [lambda r: Answer(403, [], b"") if r.method == "REPORT" else None]
    with pytest.raises(AuthError, match="403"):
        connector.changes(None, {})


def test_one_refused_item_does_not_stop_the_pass(tmp_path: Path, radicale: EmbeddedRadicale,
                                                dav_proxy: DavProxy) -> None:
    world = World(tmp_path, radicale, dav_proxy)  # type: ignore[arg-type]  # only .url is used
    world.bind()
    dav_proxy.before.append(refuse(403))
    world.save(meeting("ok1", "Fine"), meeting("bad1", "Refused"), meeting("ok2", "Also fine", days=5))
    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["remote_created"] == 2 and report.counts["errors"] == 1
    [error] = report.errors
    assert error.startswith("bad1: ") and "the server refused the item (HTTP 403 Forbidden)" in error


# -- throttling -------------------------------------------------------------------------------------


def busy(times: int, retry_after: str | None, status: int = 429) -> object:
    left = [times]

    def hook(request: Request) -> Answer | None:
        if request.method == "REPORT" and left[0] > 0:
            left[0] -= 1
            headers = [("Retry-After", retry_after)] if retry_after is not None else []
            return Answer(status, headers, b"slow down")
        return None
    return hook


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_waited_out_within_max_backoff(connector: CalDavConnector, dav_proxy: DavProxy,
                                                      status: int) -> None:
    slept: list[float] = []
    connector._transport._sleep = slept.append  # the clock only: no test waits for real
    dav_proxy.before.append(busy(2, "4", status))
    connector.changes(None, {})
    assert slept == [4.0, 4.0]
    assert dav_proxy.count("REPORT") == 3


def test_a_wait_beyond_max_backoff_fails_the_pass_naming_the_wait(connector: CalDavConnector,
                                                                  dav_proxy: DavProxy) -> None:
    slept: list[float] = []
    connector._transport._sleep = slept.append
    dav_proxy.before.append(busy(5, "7"))
    with pytest.raises(RemoteError, match=r"asks to wait 7 s more \(waited 7 s\); beyond max_backoff = 10 s"):
        connector.changes(None, {})
    assert slept == [7.0]
    dav_proxy.before[:] = [busy(1, "Wed, 21 Oct 2099 07:28:00 GMT")]
    with pytest.raises(RemoteError, match="asks to wait"):
        connector.changes(None, {})


# -- odd but legal answers ----------------------------------------------------------------------------


def test_a_delete_answered_204_with_a_body_does_not_break_the_next_request(
    connector: CalDavConnector, dav_proxy: DavProxy
) -> None:
    """The body of a 204 is never read; on a kept-alive connection it would be taken for the next answer."""
    def chatty(request: Request, answer: Answer) -> Answer:
        if request.method == "DELETE" and answer.status in (200, 204):
            return Answer(204, [("Content-Type", "text/html")], b"<html><body>Deleted.</body></html>")
        return answer

    dav_proxy.after.append(chatty)
    a = connector.create(appointment("A1"))
    b = connector.create(appointment("B1", "Review"))
    connector.delete(a.ref, a.etag)
    connector.delete(b.ref, b.etag)
    assert connector.changes(None, {}).changed == []
    connector.create(appointment("C1", "After"))
    assert [i.crm_id for i in connector.changes(None, {}).changed] == ["C1"]


# -- one UID per calendar home ------------------------------------------------------------------------


def test_copies_in_calendars_of_one_home_get_their_own_uid(tmp_path: Path, radicale: EmbeddedRadicale,
                                                            dav_proxy: DavProxy) -> None:
    """Anna's meeting with Bob: both bindings' calendars belong to one account (one calendar home) on a
    server that keeps one UID per home. Bob's copy is written under a UID of its own and stays paired."""
    rule = OneUidPerHome(dav_proxy)
    world = World(tmp_path, radicale, dav_proxy)  # type: ignore[arg-type]  # only .url is used
    annas = world.bind("anna", OWNER)
    bobs = world.bind("bob", BOB)
    bob = Participant(ParticipantKind.USER, BOB, "Bob")
    world.save(meeting("s1", "Steering", participants=(bob,)))
    for name in ("anna", "bob"):
        report = world.sync(name)
        assert report.result == "ok" and not report.errors, (name, report.errors)
    assert rule.refused == 1
    [anna_uid] = annas.items()
    [bob_uid] = bobs.items()
    assert anna_uid == uid_for("s1") and bob_uid != anna_uid
    [copy] = bobs.items()[bob_uid].walk("VEVENT")
    assert str(copy["X-SYNCD-ID"]) == "s1"
    # Paired on later passes: an edit reaches both, nothing is created twice.
    world.save(meeting("s1", "Steering (moved)", participants=(bob,)))
    for name in ("anna", "bob"):
        report = world.sync(name)
        assert report.counts["remote_updated"] == 1 and not report.errors, (name, dict(report.counts))
    assert len(bobs.items()) == 1 and rule.refused == 1
    summaries = {str(c.walk("VEVENT")[0]["SUMMARY"]) for p in (annas, bobs) for c in p.items().values()}
    assert summaries == {"Steering (moved)"}
