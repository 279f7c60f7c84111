"""The CalDAV protocol layer on raw iCalendar bytes, against Radicale behind a proxy that reshapes
answers the way other servers legitimately send them (absolute hrefs, no ETag on PUT, truncation)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, unquote

import pytest
from lxml import etree
from radicale_server import PASSWORD, USER, Answer, FaultProxy, Seen, proxy, radicale, unique_name

from syncd.connectors import caldav_collection
from syncd.connectors import caldav_protocol as dav
from syncd.connectors.caldav_collection import DavCollection
from syncd.connectors.caldav_transport import DavTransport
from syncd.connectors.radicale_embedded import EmbeddedRadicale

__all__ = ["proxy", "radicale"]  # pytest fixtures


def ics_event(uid: str, summary: str = "Meeting") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//syncd tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
        f"DTEND:20260105T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.fixture
def collection(radicale: EmbeddedRadicale, proxy: FaultProxy) -> Iterator[DavCollection]:
    name = unique_name()
    radicale.make_calendar(USER, name)
    url = f"{proxy.url}/{USER}/{name}/"
    transport = DavTransport(url, username=USER, password=PASSWORD, auth="basic", timeout=5)
    yield DavCollection(transport, url)
    transport.close()


def test_truncated_sync_answer_is_continued_with_the_new_token(
    collection: DavCollection, proxy: FaultProxy
) -> None:
    """RFC 6578 3.6: after a 507 for the collection the client asks again and misses nothing."""
    token = collection.sync(None).token
    paths = [collection.item_path(f"t{i}.ics") for i in range(3)]
    for i, path in enumerate(paths):
        collection.create(path, ics_event(f"t{i}"))

    def truncate_once(seen: Seen, answer: Answer) -> Answer:
        if seen.method != "REPORT" or b"sync-collection" not in seen.body or proxy.rewrite is None:
            return answer
        proxy.rewrite = None
        root = etree.fromstring(answer.body)
        responses = root.findall(f"{{{dav.DAV}}}response")
        root.remove(responses[-1])
        marker = etree.SubElement(root, f"{{{dav.DAV}}}response")
        etree.SubElement(marker, f"{{{dav.DAV}}}href").text = collection.path
        etree.SubElement(marker, f"{{{dav.DAV}}}status").text = "HTTP/1.1 507 Insufficient Storage"
        # The token of a partial answer: here the one asked with, which is valid and repeats work.
        root.find(f"{{{dav.DAV}}}sync-token").text = etree.fromstring(seen.body).findtext(dav.SYNC_TOKEN)
        return Answer(answer.status, answer.headers, etree.tostring(root))

    proxy.rewrite = truncate_once
    proxy.reset()
    delta = collection.sync(token)
    assert set(paths) == set(delta.changed)
    assert 2 == proxy.count("REPORT")
    assert [] == list(collection.sync(delta.token).changed)


def test_put_answered_without_etag_reads_the_etag(collection: DavCollection, proxy: FaultProxy) -> None:
    """RFC 4791 5.3.4 lets a server omit the ETag when it rewrote the data; the etag is asked for."""

    def drop_etag(seen: Seen, answer: Answer) -> Answer:
        if seen.method == "PUT":
            return Answer(answer.status, [(n, v) for n, v in answer.headers if n.lower() != "etag"], answer.body)
        return answer

    proxy.rewrite = drop_etag
    path = collection.item_path("no-etag.ics")
    etag = collection.create(path, ics_event("no-etag")).etag
    assert etag is not None
    assert {path: etag} == collection.list_etags()
    assert collection.update(path, etag, ics_event("no-etag", "Moved")).etag not in (None, etag)


def test_absolute_percent_encoded_hrefs_are_understood(
    collection: DavCollection, proxy: FaultProxy
) -> None:
    """Hrefs sent as absolute URLs with '@' escaped name the same items as Radicale's own paths."""

    def absolutize(seen: Seen, answer: Answer) -> Answer:
        if answer.status != 207:
            return answer
        root = etree.fromstring(answer.body)
        for href in root.iter(f"{{{dav.DAV}}}href"):
            href.text = proxy.url + quote(unquote(href.text or ""), safe="/")
        return Answer(answer.status, answer.headers, etree.tostring(root))

    path = collection.item_path("a@b.ics")
    etag = collection.create(path, ics_event("a@b")).etag
    proxy.rewrite = absolutize
    assert {path: etag} == collection.sync(None).changed
    assert {path: etag} == collection.list_etags()
    [item] = collection.multiget([path])
    assert (path, etag) == (item.path, item.etag)
    assert b"UID:a@b" in item.data


def test_multiget_goes_in_batches(
    collection: DavCollection, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many changed items cost one REPORT per batch, not one GET each; missing hrefs are left out."""
    monkeypatch.setattr(caldav_collection, "MULTIGET_BATCH", 2)
    paths = [collection.item_path(f"b{i}.ics") for i in range(5)]
    for i, path in enumerate(paths):
        collection.create(path, ics_event(f"b{i}"))
    proxy.reset()
    items = collection.multiget([*paths, collection.item_path("missing.ics")])
    assert sorted(paths) == sorted(item.path for item in items)
    assert 3 == proxy.count("REPORT")
    assert proxy.count() == proxy.count("REPORT")
