"""Updates the CRM made, read in one calendar-multiget instead of a GET before every PUT (issue 14).

The body syncd writes over must still be the whole item at the version the engine decided on, so
other clients' data survives: these check the batched read keeps the guarantees of the GET it
replaces, on a real Radicale behind the fault-injecting proxy of ``tests/fault_proxy.py``.
"""

from __future__ import annotations

import base64
import http.client
import re
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import fault_proxy
import pytest
from fault_proxy import Answer, Request
from radicale_server import PASSWORD, USER, put_raw, radicale, unique_name

from syncd.connectors import caldav as caldav_module
from syncd.connectors.base import Prefetching
from syncd.connectors.caldav import CalDavConfig, CalDavConnector
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.errors import PreconditionFailed
from syncd.mapping.context import MappingContext
from syncd.model import Activity, CrmUser, Kind

__all__ = ["radicale"]  # pytest fixture

AMS = ZoneInfo("Europe/Amsterdam")
OWNER = "alice@example.com"
CTX = MappingContext(owner=CrmUser(OWNER, "Alice", "Europe/Amsterdam"))
#: What the phone adds to every item syncd made: an update must keep it.
PHONE_LINE = "X-PHONE-COLOR:#FF2968"


def appointment(activity_id: str, subject: str, day: int = 2) -> Activity:
    return Activity(
        id=activity_id, kind=Kind.APPOINTMENT, subject=subject, owner=OWNER,
        start=datetime(2026, 3, day, 10, 0, tzinfo=AMS), end=datetime(2026, 3, day, 11, 0, tzinfo=AMS),
        timezone="Europe/Amsterdam",
    )


def get_direct(url: str) -> tuple[str, bytes]:
    """The item as Radicale holds it (ETag, body), read past the proxy."""
    parts = urlsplit(url)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        conn.request("GET", parts.path, headers={"Authorization": f"Basic {token}"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        return response.getheader("ETag") or "", body
    finally:
        conn.close()


class Calendar:
    """Three items syncd made and the phone then edited (``PHONE_LINE``); a connector through the proxy."""

    IDS = ("A1", "A2", "A3")

    def __init__(self, radicale: EmbeddedRadicale) -> None:
        name = unique_name("prefetch")
        radicale.make_calendar(USER, name, ("VEVENT", "VTODO"))
        self.direct_url = radicale.collection_url(USER, name)
        url, self.proxy = fault_proxy.start(self.direct_url)
        self.caldav = CalDavConnector(CalDavConfig(url, None, USER, PASSWORD, "basic", timeout=5), CTX)
        self.refs: dict[str, str] = {}
        self.etags: dict[str, str] = {}
        for n, key in enumerate(self.IDS):
            ref = self.caldav.create(appointment(key, f"Meeting {key}", day=n + 2)).ref
            self.refs[key] = ref
            self.phone_edit(key, PHONE_LINE)
        self.proxy.reset()

    def url(self, key: str) -> str:
        return self.direct_url + self.refs[key].rsplit("/", 1)[1]

    def phone_edit(self, key: str, line: str) -> None:
        """Another client adds a line to the item; syncd's known etag is the one after it."""
        _, body = get_direct(self.url(key))
        assert put_raw(self.url(key), body.replace(b"END:VEVENT", f"{line}\r\nEND:VEVENT".encode())) in (201, 204)
        self.etags[key] = get_direct(self.url(key))[0]

    def update(self, key: str, subject: str) -> None:
        written = self.caldav.update(self.refs[key], self.etags[key], appointment(key, subject))
        self.etags[key] = written.etag or ""

    def holds(self, key: str, *lines: str) -> bool:
        text = get_direct(self.url(key))[1].decode()
        return all(line in text for line in lines)

    def methods(self) -> list[str]:
        return [r.method for r in self.proxy.requests]

    def close(self) -> None:
        self.caldav.close()
        self.proxy.stop()


@pytest.fixture
def cal(radicale: EmbeddedRadicale) -> Iterator[Calendar]:
    made = Calendar(radicale)
    try:
        yield made
    finally:
        made.close()


def multiget(request: Request) -> bool:
    return request.method == "REPORT" and b"calendar-multiget" in request.body


def test_prefetched_updates_cost_one_multiget_and_keep_other_clients_data(cal: Calendar) -> None:
    assert isinstance(cal.caldav, Prefetching)
    cal.caldav.prefetch([cal.refs[k] for k in cal.IDS])
    for key in cal.IDS:
        cal.update(key, f"Renamed {key}")
    assert cal.methods() == ["REPORT", "PUT", "PUT", "PUT"]
    for key in cal.IDS:
        assert cal.holds(key, f"SUMMARY:Renamed {key}", PHONE_LINE)


def test_many_prefetched_updates_are_read_in_batches_as_the_writes_reach_them(
    cal: Calendar, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(caldav_module, "MULTIGET_BATCH", 2)
    cal.caldav.prefetch([cal.refs[k] for k in cal.IDS])
    for key in cal.IDS:
        cal.update(key, f"Renamed {key}")
    assert cal.methods() == ["REPORT", "PUT", "PUT", "REPORT", "PUT"]
    assert all(cal.holds(key, f"SUMMARY:Renamed {key}", PHONE_LINE) for key in cal.IDS)


def test_an_item_changed_after_the_batched_read_is_not_written_over(cal: Calendar) -> None:
    """The phone edits A2 after the multiget read it: the PUT carries the etag that came with that
    body, the server refuses it, and the phone's edit stays; the engine's re-read then writes over it."""
    cal.caldav.prefetch([cal.refs[k] for k in cal.IDS])
    cal.update("A1", "Renamed A1")  # reads the batch
    known = cal.etags["A2"]
    cal.phone_edit("A2", "X-SECOND-EDIT:yes")
    with pytest.raises(PreconditionFailed):
        cal.caldav.update(cal.refs["A2"], known, appointment("A2", "Renamed A2"))
    assert cal.holds("A2", "SUMMARY:Meeting A2", "X-SECOND-EDIT:yes", PHONE_LINE)
    assert cal.methods() == ["REPORT", "PUT", "PUT"]
    [fresh] = cal.caldav.fetch([cal.refs["A2"]])
    cal.caldav.update(fresh.ref, fresh.etag, appointment("A2", "Renamed A2"), fresh.raw)
    assert cal.holds("A2", "SUMMARY:Renamed A2", "X-SECOND-EDIT:yes", PHONE_LINE)


def test_a_batched_copy_at_another_version_than_the_engines_is_not_used(cal: Calendar) -> None:
    """The phone edited A1 before the batch was read, after the engine decided: the batch's copy is
    newer than what the engine decided on, so it is no base; the GET that replaces it says 412."""
    known = cal.etags["A1"]
    cal.phone_edit("A1", "X-SECOND-EDIT:yes")
    cal.caldav.prefetch([cal.refs["A1"]])
    with pytest.raises(PreconditionFailed):
        cal.caldav.update(cal.refs["A1"], known, appointment("A1", "Renamed A1"))
    assert cal.methods() == ["REPORT", "GET"]
    assert cal.holds("A1", "SUMMARY:Meeting A1", "X-SECOND-EDIT:yes")


def test_a_failed_multiget_falls_back_to_a_get_per_item(cal: Calendar) -> None:
    failed = cal.proxy.fault("status500", match=multiget)
    cal.caldav.prefetch([cal.refs[k] for k in cal.IDS])
    for key in cal.IDS:
        cal.update(key, f"Renamed {key}")
    assert failed.fired == 1
    assert cal.methods() == ["REPORT", "GET", "PUT", "GET", "PUT", "GET", "PUT"]
    assert all(cal.holds(key, f"SUMMARY:Renamed {key}", PHONE_LINE) for key in cal.IDS)


def test_an_item_the_multiget_leaves_out_is_read_with_a_get(cal: Calendar) -> None:
    name = cal.refs["A2"].rsplit("/", 1)[1].encode()

    def without_a2(request: Request, answer: Answer) -> Answer:
        responses = re.compile(rb"<(?:[\w.-]+:)?response\b.*?</(?:[\w.-]+:)?response>", re.DOTALL)
        body = responses.sub(lambda m: b"" if name in m.group(0) else m.group(0), answer.body)
        return Answer(answer.status, answer.headers, body)

    cal.proxy.fault("rewrite", match=multiget, rewrite=without_a2)
    cal.caldav.prefetch([cal.refs[k] for k in cal.IDS])
    for key in cal.IDS:
        cal.update(key, f"Renamed {key}")
    assert cal.methods() == ["REPORT", "PUT", "GET", "PUT", "PUT"]
    assert all(cal.holds(key, f"SUMMARY:Renamed {key}", PHONE_LINE) for key in cal.IDS)


def test_a_cut_copy_in_the_multiget_is_read_again(cal: Calendar) -> None:
    """A calendar-data cut at a line boundary (the XML still well-formed) is no base: a GET is."""
    name = cal.refs["A3"].rsplit("/", 1)[1]
    cal.proxy.fault("truncate_ics", match=multiget, item=name, keep=0.5)
    cal.caldav.prefetch([cal.refs[k] for k in cal.IDS])
    for key in cal.IDS:
        cal.update(key, f"Renamed {key}")
    assert cal.methods() == ["REPORT", "PUT", "PUT", "GET", "PUT"]
    assert all(cal.holds(key, f"SUMMARY:Renamed {key}", PHONE_LINE) for key in cal.IDS)


def test_the_batch_lasts_one_pass(cal: Calendar) -> None:
    """Reading the change feed starts a new pass: what was to be read in a batch is read by GET again."""
    state = cal.caldav.changes(None, {}).state
    cal.caldav.prefetch([cal.refs["A1"]])
    cal.caldav.changes(state, {cal.refs[k]: cal.etags[k] for k in cal.IDS})
    cal.proxy.reset()
    cal.update("A1", "Renamed A1")
    assert cal.methods() == ["GET", "PUT"]
