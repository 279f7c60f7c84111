"""The change feed is checked against the collection now and then, and deletions are confirmed.

Real Radicale on loopback; the forgetful server is Radicale behind :class:`dav_proxy.ForgetfulSync`,
which answers a sync token with an empty 207 instead of RFC 6578's valid-sync-token error.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dav_proxy import Answer, DavProxy, ForgetfulSync, Request, dav_proxy
from radicale_server import PASSWORD, USER, put_raw, radicale, unique_name

from syncd.connectors.caldav import CalDavConfig, CalDavConnector
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.mapping.context import MappingContext
from syncd.mapping.ical import to_ical
from syncd.model import Activity, CrmUser, Kind

sys.path.insert(0, str(Path(__file__).parent.parent / "engine"))
from world import World, meeting, uid

__all__ = ["dav_proxy", "radicale"]  # pytest fixtures

AMS = ZoneInfo("Europe/Amsterdam")
OWNER = "alice@example.com"
CTX = MappingContext(owner=CrmUser(OWNER, "Alice", "Europe/Amsterdam"))
HOUR = 3600.0


def appointment(activity_id: str, subject: str = "Kick-off") -> Activity:
    return Activity(id=activity_id, kind=Kind.APPOINTMENT, subject=subject, owner=OWNER,
                    start=datetime(2026, 3, 2, 10, tzinfo=AMS), end=datetime(2026, 3, 2, 11, tzinfo=AMS),
                    timezone="Europe/Amsterdam")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def calendar(radicale: EmbeddedRadicale, dav_proxy: DavProxy) -> str:
    name = unique_name()
    radicale.make_calendar(USER, name, ("VEVENT", "VTODO"))
    return f"{dav_proxy.url}/{USER}/{name}/"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def connector(calendar: str, clock: Clock) -> Iterator[CalDavConnector]:
    caldav = CalDavConnector(CalDavConfig(calendar, None, USER, PASSWORD, "basic", timeout=5), CTX, clock=clock)
    yield caldav
    caldav.close()


def test_a_forgetful_sync_token_is_repaired_by_the_daily_listing(
    connector: CalDavConnector, calendar: str, dav_proxy: DavProxy, clock: Clock
) -> None:
    """Missed both ways: a changed etag, a deleted item and a new one the feed never reported come
    back with the next full listing (24 h by default), and only then."""
    a = connector.create(appointment("A1"))
    b = connector.create(appointment("B1", "Review"))
    first = connector.changes(None, {})
    known = {item.ref: item.etag for item in first.changed}
    ForgetfulSync(dav_proxy)
    # Another client edits A1, deletes B1 and creates C1.
    edited = to_ical(appointment("A1", "Kick-off (moved)"), CTX)
    assert put_raw(calendar + a.ref.rsplit("/", 1)[1], edited) == 204
    assert _delete(dav_proxy, b.ref) in (200, 204)
    assert put_raw(calendar + "phone.ics", to_ical(appointment("C1", "From the phone"), CTX)) == 201

    clock.now += 23 * HOUR
    dav_proxy.reset()
    quiet = connector.changes(first.state, known)
    assert (quiet.changed, quiet.deleted) == ([], [])  # the feed lies, and is believed for a while
    assert [r.method for r in dav_proxy.requests] == ["REPORT"]

    clock.now += 2 * HOUR
    dav_proxy.reset()
    repaired = connector.changes(quiet.state, known)
    assert {i.crm_id: i.activity.subject for i in repaired.changed if i.activity} == {
        "A1": "Kick-off (moved)", "C1": "From the phone"}
    assert repaired.deleted == [b.ref]
    # The cost: one PROPFIND Depth 1 listing more, and the multiget of what changed.
    assert [r.method for r in dav_proxy.requests] == ["REPORT", "PROPFIND", "REPORT"]
    assert dav_proxy.requests[1].headers.get("Depth") == "1"

    # Checked: the next pass is one request again, for another day.
    dav_proxy.reset()
    known = {k: v for k, v in known.items() if k != b.ref} | {i.ref: i.etag for i in repaired.changed}
    clock.now += HOUR
    assert connector.changes(repaired.state, known).changed == []
    assert [r.method for r in dav_proxy.requests] == ["REPORT"]


def _delete(proxy: DavProxy, path: str) -> int:
    import base64
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]), timeout=5)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conn.request("DELETE", path, headers={"Authorization": f"Basic {token}"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_full_check_interval_zero_lists_every_pass(calendar: str, dav_proxy: DavProxy, clock: Clock) -> None:
    """An idle pass then costs two requests: the sync-collection REPORT and the listing."""
    config = CalDavConfig(calendar, None, USER, PASSWORD, "basic", timeout=5, full_check_interval=0)
    caldav = CalDavConnector(config, CTX, clock=clock)
    try:
        caldav.create(appointment("A1"))
        first = caldav.changes(None, {})
        known = {i.ref: i.etag for i in first.changed}
        dav_proxy.reset()
        idle = caldav.changes(first.state, known)
        assert (idle.changed, idle.deleted) == ([], [])
        assert [r.method for r in dav_proxy.requests] == ["REPORT", "PROPFIND"]
    finally:
        caldav.close()


def test_a_deletion_the_feed_reports_is_believed_only_if_the_listing_agrees(
    connector: CalDavConnector, dav_proxy: DavProxy, clock: Clock
) -> None:
    """A sync answer that wrongly says an item is gone (404 in the report) does not delete it."""
    a = connector.create(appointment("A1"))
    first = connector.changes(None, {})
    known = {i.ref: i.etag for i in first.changed}

    def gone(request: Request, answer: Answer) -> Answer:
        if request.method == "REPORT" and b"sync-collection" in request.body and b"<D:sync-token>" in request.body:
            fake = (f"<D:response><D:href>{a.ref}</D:href><D:status>HTTP/1.1 404 Not Found</D:status>"
                    "</D:response>").encode()
            answer.body = re.sub(rb"(<(?:\w+:)?multistatus[^>]*>)", lambda m: m.group(1) + fake, answer.body,
                                 count=1)
            answer.body = answer.body.replace(b"<D:response>", b'<D:response xmlns:D="DAV:">')
        return answer

    dav_proxy.after.append(gone)
    clock.now += HOUR
    dav_proxy.reset()
    result = connector.changes(first.state, known)
    assert result.deleted == [] and result.changed == []
    assert [r.method for r in dav_proxy.requests] == ["REPORT", "PROPFIND"]


def test_the_engine_on_a_forgetful_server_with_every_pass_checked(tmp_path: Path, radicale: EmbeddedRadicale,
                                                                  dav_proxy: DavProxy) -> None:
    """End to end: with full_check_interval = 0 the CRM gets the phone's edit, deletion and new item
    although the server's feed reports none of them."""
    world = World(tmp_path, radicale, dav_proxy)  # type: ignore[arg-type]  # only .url is used
    phone = world.bind(remote={"full_check_interval": 0})
    world.save(meeting("e1", "Kick-off"), meeting("e2", "Review", days=4), meeting("e3", "Retro", days=5))
    assert world.sync().counts["remote_created"] == 3
    ForgetfulSync(dav_proxy)
    phone.edit(uid("e1"), location="Room 4.12")
    phone.delete(uid("e2"))
    phone.create_event("phone-1@example.org", "Lunch", meeting("x").start)
    report = world.sync()
    assert report.result == "ok", report.error
    assert (report.counts["crm_updated"], report.counts["crm_deleted"], report.counts["crm_created"]) == (1, 1, 1)
    assert world.get("e1").location == "Room 4.12" and world.get("e2") is None
