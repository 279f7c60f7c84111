"""Other clients' data survives a damaged read (issue 10, point 6).

An update writes over the item as read; a read that is not what the server holds (cut short, with
another ETag, or parsed with lines skipped) must never be that base. A real Radicale on loopback,
with the fault-injecting proxy of ``tests/fault_proxy.py`` in front of it, damages chosen answers.
"""

from __future__ import annotations

import base64
import http.client
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import fault_proxy
import pytest
from fault_proxy import Answer, Controller, Request
from radicale_server import PASSWORD, USER, put_raw, radicale, unique_name

from syncd.connectors.base import RemoteItem
from syncd.connectors.caldav import CalDavConfig, CalDavConnector, damage
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.errors import ItemError, PreconditionFailed
from syncd.mapping.context import MappingContext
from syncd.model import Activity, CrmUser, Kind

__all__ = ["radicale"]  # pytest fixture

AMS = ZoneInfo("Europe/Amsterdam")
OWNER = "alice@example.com"
CTX = MappingContext(owner=CrmUser(OWNER, "Alice", "Europe/Amsterdam"))
SAMPLES = sorted((Path(__file__).parent.parent / "data" / "ics").glob("*.ics"))
#: What the phone adds to the item syncd made; syncd owns none of it, so every update must keep it
#: (CLASS and TRANSP are the activity's sensitivity and show-as now: the CRM's to write).
PHONE_LINES = (
    "COLOR:tomato",
    "X-MOZ-GENERATION:3",
    "X-PHONE-COLOR:#FF2968",
    "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC",
)


def appointment(subject: str) -> Activity:
    return Activity(
        id="A1",
        kind=Kind.APPOINTMENT,
        subject=subject,
        owner=OWNER,
        start=datetime(2026, 3, 2, 10, 0, tzinfo=AMS),
        end=datetime(2026, 3, 2, 11, 0, tzinfo=AMS),
        timezone="Europe/Amsterdam",
    )


class Setup:
    """A calendar holding an item syncd made and the phone then edited, and a connector to it
    through the fault proxy."""

    def __init__(self, radicale: EmbeddedRadicale) -> None:
        name = unique_name("damaged")
        radicale.make_calendar(USER, name, ("VEVENT", "VTODO"))
        self.direct_url = radicale.collection_url(USER, name)
        url, self.proxy = fault_proxy.start(self.direct_url)
        self.caldav = CalDavConnector(CalDavConfig(url, None, USER, PASSWORD, "basic", timeout=5), CTX)
        created = self.caldav.create(appointment("Kick-off"))
        self.ref = created.ref
        self.item_url = self.direct_url + self.ref.rsplit("/", 1)[1]
        _, body = get_direct(self.item_url)
        edited = body.replace(b"END:VEVENT", "\r\n".join((*PHONE_LINES, "END:VEVENT")).encode())
        assert put_raw(self.item_url, edited) in (201, 204)
        self.etag, self.body = get_direct(self.item_url)
        self.proxy.reset()

    def feed_item(self) -> RemoteItem:
        [item] = self.caldav.changes(None, {}).changed
        return item

    def close(self) -> None:
        self.caldav.close()
        self.proxy.stop()


@pytest.fixture
def setup(radicale: EmbeddedRadicale) -> Iterator[Setup]:
    made = Setup(radicale)
    try:
        yield made
    finally:
        made.close()


def get_direct(url: str) -> tuple[str, bytes]:
    """The item as Radicale holds it (ETag, body), read past the proxy."""
    parts = urlsplit(url)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        conn.request("GET", parts.path, headers={"Authorization": f"Basic {token}"})
        response = conn.getresponse()
        body = response.read()
        assert 200 == response.status, body
        return response.getheader("ETag") or "", body
    finally:
        conn.close()


def assert_phone_data_kept(setup: Setup, subject: str) -> None:
    _, body = get_direct(setup.item_url)
    text = body.decode()
    assert f"SUMMARY:{subject}" in text
    for line in PHONE_LINES:
        assert line in text, f"{line} lost:\n{text}"


# --- a GET before the update -----------------------------------------------------------------------


def test_a_connection_cut_mid_body_is_read_again_and_the_update_keeps_the_phones_data(setup: Setup) -> None:
    """The first GET's body stops short of its Content-Length; one fresh GET is the base instead."""
    cut = setup.proxy.fault("truncate", method="GET", keep=0.6)
    written = setup.caldav.update(setup.ref, setup.etag, appointment("Renamed"))
    assert written.etag not in (None, setup.etag)
    assert (1, 2, 1) == (cut.fired, setup.proxy.count("GET"), setup.proxy.count("PUT"))
    assert_phone_data_kept(setup, "Renamed")


def test_a_connection_cut_twice_is_an_item_error_naming_the_sizes(setup: Setup) -> None:
    """When the fresh read is cut short too, the item fails with the reason; nothing is written."""
    setup.proxy.fault("truncate", method="GET", keep=0.6, times=None)
    with pytest.raises(ItemError) as failure:
        setup.caldav.update(setup.ref, setup.etag, appointment("Renamed"))
    size = len(setup.body)
    received = setup.body.rfind(b"\n", 0, int(size * 0.6)) + 1
    assert setup.ref == failure.value.item
    assert (
        f"the server's answer was cut short ({received} of {size} bytes); "
        "not written, to keep other clients' properties"
    ) == failure.value.message
    assert (2, 0) == (setup.proxy.count("GET"), setup.proxy.count("PUT"))
    assert_phone_data_kept(setup, "Kick-off")


def test_a_short_answer_with_a_matching_length_is_not_written_over(setup: Setup) -> None:
    """A body cut at a line boundary whose Content-Length says so anyway: only the missing
    END:VCALENDAR shows it. Every read is short, so the item fails and stays as the phone left it."""
    setup.proxy.fault("truncate_ics", method="GET", keep=0.5, times=None)
    with pytest.raises(ItemError, match="ends before END:VCALENDAR.*not written, to keep other clients"):
        setup.caldav.update(setup.ref, setup.etag, appointment("Renamed"))
    assert (2, 0) == (setup.proxy.count("GET"), setup.proxy.count("PUT"))
    assert_phone_data_kept(setup, "Kick-off")


def test_a_short_answer_once_is_read_again(setup: Setup) -> None:
    """One short answer costs one more GET, and the update goes through from the whole item."""
    setup.proxy.fault("truncate_ics", method="GET", keep=0.5)
    setup.caldav.update(setup.ref, setup.etag, appointment("Renamed"))
    assert_phone_data_kept(setup, "Renamed")
    assert (2, 1) == (setup.proxy.count("GET"), setup.proxy.count("PUT"))


def test_a_garbage_answer_is_an_item_error_not_a_crash(setup: Setup) -> None:
    """Bytes that are neither UTF-8 nor iCalendar, twice: the item fails with a reason, nothing is written."""
    setup.proxy.fault("garbage", method="GET", times=None)
    with pytest.raises(ItemError, match="does not start with BEGIN:VCALENDAR; not written"):
        setup.caldav.update(setup.ref, setup.etag, appointment("Renamed"))
    assert (2, 0) == (setup.proxy.count("GET"), setup.proxy.count("PUT"))
    assert_phone_data_kept(setup, "Kick-off")


def test_a_read_with_another_etag_is_a_precondition_failure(setup: Setup) -> None:
    """The GET says the item is at another version than the one syncd decided on: the engine must
    read and decide again (PreconditionFailed), and its retry from the feed's copy keeps the phone's data."""
    setup.proxy.fault("etag", method="GET")
    with pytest.raises(PreconditionFailed) as failure:
        setup.caldav.update(setup.ref, setup.etag, appointment("Renamed"))
    assert setup.ref == failure.value.ref
    assert 0 == setup.proxy.count("PUT")
    # What the engine does next: fetch, then update over the fetched copy.
    [fresh] = setup.caldav.fetch([setup.ref])
    setup.caldav.update(fresh.ref, fresh.etag, appointment("Renamed"), fresh.raw)
    assert_phone_data_kept(setup, "Renamed")


# --- the feed's copy as the base -------------------------------------------------------------------


def test_a_cut_copy_from_the_multiget_is_not_the_base(setup: Setup) -> None:
    """A REPORT (the first pull's listing, which brings the bodies, or a multiget) whose calendar-data
    was cut at a line boundary (XML still well-formed): the item comes back unreadable; its raw copy
    handed to update() is replaced by a GET."""
    setup.proxy.fault("truncate_ics", method="REPORT", body=b"calendar-data", keep=0.5)
    item = setup.feed_item()
    assert item.activity is None and isinstance(item.raw, bytes)
    setup.proxy.reset()
    setup.caldav.update(item.ref, item.etag, appointment("Renamed"), item.raw)
    assert_phone_data_kept(setup, "Renamed")
    assert (1, 1) == (setup.proxy.count("GET"), setup.proxy.count("PUT"))
    assert item.error is not None and "ends before END:VCALENDAR" in item.error


def test_a_copy_whose_parse_skipped_a_line_is_not_the_base(setup: Setup) -> None:
    """A listed or multiget copy with a mangled line still parses (icalendar skips the line silently) and
    reads as a good activity; writing over it would drop that line. The update reads the item again."""

    def mangle(request: Request, answer: Answer) -> Answer:
        return Answer(answer.status, answer.headers, answer.body.replace(b"X-PHONE-COLOR:", b"X-PHONE-COLOR;=:"))

    setup.proxy.fault("rewrite", method="REPORT", body=b"calendar-data", rewrite=mangle)
    item = setup.feed_item()
    assert item.activity is not None and "Kick-off" == item.activity.subject
    assert isinstance(item.raw, bytes) and b"X-PHONE-COLOR;=:" in item.raw
    setup.proxy.reset()
    setup.caldav.update(item.ref, item.etag, appointment("Renamed"), item.raw)
    assert_phone_data_kept(setup, "Renamed")
    assert (1, 1) == (setup.proxy.count("GET"), setup.proxy.count("PUT"))
    reason = damage(item.raw)
    assert reason is not None and "kept" in reason and "X-PHONE-COLOR;=:" in reason


def test_a_damaged_copy_and_a_damaged_reread_are_an_item_error(setup: Setup) -> None:
    """The feed's copy was the first read; when the one fresh GET is damaged too, nothing is written."""
    setup.proxy.fault("truncate_ics", method="REPORT", body=b"calendar-data", keep=0.5)
    item = setup.feed_item()
    setup.proxy.reset()
    setup.proxy.fault("truncate", method="GET", times=None)
    with pytest.raises(ItemError, match="cut short"):
        setup.caldav.update(item.ref, item.etag, appointment("Renamed"), item.raw)
    assert (1, 0) == (setup.proxy.count("GET"), setup.proxy.count("PUT"))
    assert_phone_data_kept(setup, "Kick-off")


def test_a_whole_copy_from_the_feed_costs_no_extra_read(setup: Setup) -> None:
    """No damage, no GET: the check does not turn every update into two requests."""
    item = setup.feed_item()
    setup.proxy.reset()
    setup.caldav.update(item.ref, item.etag, appointment("Renamed"), item.raw)
    assert ["PUT"] == [r.method for r in setup.proxy.requests]
    assert_phone_data_kept(setup, "Renamed")


# --- no false alarms -------------------------------------------------------------------------------


def test_updates_straight_to_radicale_pass_the_checks(radicale: EmbeddedRadicale) -> None:
    """Without the proxy Radicale may compress its answers (Content-Length then counts gzip bytes);
    a GET-based update and a feed-based one both go through."""
    name = unique_name("direct")
    radicale.make_calendar(USER, name, ("VEVENT",))
    caldav = CalDavConnector(
        CalDavConfig(radicale.collection_url(USER, name), None, USER, PASSWORD, "basic", timeout=5), CTX
    )
    try:
        created = caldav.create(appointment("Kick-off"))
        second = caldav.update(created.ref, created.etag, appointment("Renamed"))
        [item] = caldav.fetch([created.ref])
        assert item.etag == second.etag
        caldav.update(item.ref, item.etag, appointment("Renamed again"), item.raw)
        [item] = caldav.fetch([created.ref])
        assert item.activity is not None and "Renamed again" == item.activity.subject
    finally:
        caldav.close()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_real_world_items_are_whole_and_every_cut_of_them_is_not(sample: Path) -> None:
    """Items from Apple, Google, Outlook, Exchange and Thunderbird pass; the same items cut at any
    line boundary, or with a line icalendar cannot read, do not."""
    data = sample.read_bytes()
    assert damage(data) is None
    cuts = [m.end() for m in re.finditer(rb"\n", data) if data[m.end() :].strip()]
    assert len(cuts) > 20
    for end in cuts:
        assert damage(data[:end]) is not None, data[:end]
    property_line = re.search(rb"\n(SUMMARY|DTSTART|UID)([;:])", data)
    assert property_line is not None
    broken = data[: property_line.start(2)] + b";=" + data[property_line.start(2) :]
    assert damage(broken) is not None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "does not start with BEGIN:VCALENDAR"),
        (b"<html>busy</html>", "does not start with BEGIN:VCALENDAR"),
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\n", "ends before END:VCALENDAR"),
        (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VCALENDAR\r\n", "cannot be parsed"),
    ],
)
def test_damage_names_what_is_wrong(data: bytes, words: str) -> None:
    reason = damage(data)
    assert reason is not None and words in reason


# --- the proxy itself (other tests build on it) ----------------------------------------------------


#: ``send(method, path, body=None, timeout=5)`` -> ``(status, headers, body)``, or the error's class name.
Send = Callable[..., Any]


@pytest.fixture
def send(radicale: EmbeddedRadicale) -> Iterator[tuple[Controller, Send]]:
    """A proxy in front of Radicale and a one-request client for it (an error comes back as its name)."""
    _, controller = fault_proxy.start(radicale.url)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def request(method: str, path: str, body: bytes | None = None, timeout: float = 5) -> Any:
        port = int(controller.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Authorization": f"Basic {token}"})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__
        finally:
            conn.close()

    try:
        yield controller, request
    finally:
        controller.stop()


def test_fault_proxy_kinds(radicale: EmbeddedRadicale, send: tuple[Controller, Send]) -> None:
    """Each kind does what the module docstring says, on the request it is aimed at."""
    ctl, request = send
    name = unique_name("proxy")
    radicale.make_calendar(USER, name, ("VEVENT",))
    path = f"/{USER}/{name}/a.ics"
    ics = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20260101T000000Z\r\n"
    ics += b"DTSTART:20260105T100000Z\r\nSUMMARY:Hi\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    assert 201 == request("PUT", path, ics)[0]
    status, headers, whole = request("GET", path)
    assert 200 == status

    ctl.fault("status500", method="GET", nth=2)
    assert 200 == request("GET", path)[0]
    assert 500 == request("GET", path)[0]
    ctl.fault("status503", retry_after=1)
    status, headers_503, _ = request("GET", path)
    assert (503, "1") == (status, headers_503["Retry-After"])
    ctl.fault("drop_before", method="PUT")
    assert "RemoteDisconnected" == request("PUT", f"/{USER}/{name}/b.ics", ics.replace(b"UID:a", b"UID:b"))
    assert 404 == request("GET", f"/{USER}/{name}/b.ics")[0]  # never reached Radicale
    ctl.fault("drop_after", method="PUT")
    assert "RemoteDisconnected" == request("PUT", f"/{USER}/{name}/c.ics", ics.replace(b"UID:a", b"UID:c"))
    assert 200 == request("GET", f"/{USER}/{name}/c.ics")[0]  # the write landed
    ctl.fault("timeout", method="GET", seconds=2)
    assert "TimeoutError" == request("GET", path, timeout=0.3)
    ctl.fault("truncate", method="GET", keep=40)
    assert "IncompleteRead" == request("GET", path)
    ctl.fault("truncate", method="GET", keep=40, announce="actual")
    assert whole[: whole.rfind(b"\n", 0, 40) + 1] == request("GET", path)[2]
    ctl.fault("garbage", path="a.ics")
    assert not request("GET", path)[2].startswith(b"BEGIN")
    ctl.fault("etag", method="GET")
    assert headers["ETag"][:-1] + '-altered"' == request("GET", path)[1]["ETag"]
    ctl.fault("etag", method="GET", value="")
    assert "ETag" not in request("GET", path)[1]

    kinds = [r.fault for r in ctl.requests]
    assert [None, None, None, "status500", "status503", "drop_before", None, "drop_after", None] == kinds[:9]
    assert ctl.count("GET", path="a.ics") == sum(1 for r in ctl.requests if r.method == "GET" and "a.ics" in r.path)
    ctl.reset()
    assert 0 == ctl.count()
