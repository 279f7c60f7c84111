"""A first pull's sync-collection REPORT asks for the items' bodies too (``syncd.connectors.body_spool``):
a calendar's first read is one request, and a server that leaves some bodies out gets those read by
multiget, with the same items either way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from radicale_server import (
    PASSWORD,
    USER,
    Answer,
    FaultProxy,
    Seen,
    proxy,
    radicale,
    unique_name,
    without_listed_bodies,
)

from syncd.connectors import body_spool
from syncd.connectors.body_spool import BodySpool
from syncd.connectors.caldav import CalDavConfig, CalDavConnector
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.mapping.context import MappingContext
from syncd.model import CrmUser

__all__ = ["proxy", "radicale"]  # pytest fixtures

CTX = MappingContext(owner=CrmUser("alice@example.com", "Alice", "Europe/Amsterdam"))
N = 12


def event(i: int) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Phone//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:phone-{i}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:202603{i + 1:02d}T090000Z\r\n"
        f"DURATION:PT1H\r\nSUMMARY:Visit #{i} \u2013 caf\u00e9\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.fixture
def connector(radicale: EmbeddedRadicale, proxy: FaultProxy) -> Iterator[CalDavConnector]:
    name = unique_name()
    radicale.make_calendar(USER, name, ("VEVENT", "VTODO"))
    folder = radicale.storage_dir / "collections" / "collection-root" / USER / name
    for i in range(N):
        (folder / f"e{i:02d}.ics").write_bytes(event(i))
    connector = CalDavConnector(CalDavConfig(f"{proxy.url}/{USER}/{name}/", None, USER, PASSWORD, "basic"), CTX,
                                use_sync_collection=True)
    yield connector
    connector.close()


def pulled(connector: CalDavConnector) -> dict[str, tuple[str | None, str]]:
    listing = connector.listing(None, {})
    return {item.ref: (item.etag, item.activity.subject) for item in connector.fetch(listing.changed)}


def test_a_first_pull_is_one_request(connector: CalDavConnector, proxy: FaultProxy) -> None:
    items = pulled(connector)
    assert sorted(subject for _, subject in items.values()) == sorted(f"Visit #{i} \u2013 caf\u00e9" for i in range(N))
    assert [(seen.method, b"calendar-data" in seen.body) for seen in proxy.requests] == [("REPORT", True)]


def test_bodies_a_server_leaves_out_are_read_by_multiget(connector: CalDavConnector, proxy: FaultProxy) -> None:
    """The same items as from a server that sends every body, read by one multiget for the rest."""
    left_out = 0

    def one_in_three_left_out(seen: Seen, answer: Answer) -> Answer:
        nonlocal left_out
        if seen.method != "REPORT" or b"sync-collection" not in seen.body:
            return answer
        responses = answer.body.split(b"</response>")
        for i in range(0, len(responses) - 1, 3):
            left_out += 1
            responses[i] = without_listed_bodies(seen, Answer(207, [], responses[i])).body
        return Answer(answer.status, answer.headers, b"</response>".join(responses))

    proxy.rewrite = one_in_three_left_out
    items = pulled(connector)
    assert left_out == -(-N // 3)
    assert len(items) == N and all(etag for etag, _ in items.values())
    assert sorted(subject for _, subject in items.values()) == sorted(f"Visit #{i} \u2013 caf\u00e9" for i in range(N))
    multigets = [seen for seen in proxy.requests if b"calendar-multiget" in seen.body]
    assert len(multigets) == 1 and multigets[0].body.count(b"<D:href>") == left_out


def test_a_later_pass_forgets_what_the_last_listing_brought(connector: CalDavConnector, proxy: FaultProxy) -> None:
    """Bodies the pass did not read are not served to the next pass, which may see a newer item."""
    listing = connector.listing(None, {})
    proxy.reset()
    connector.listing(listing.state, {})
    assert len(connector.fetch(listing.changed[:2])) == 2
    assert sum(1 for seen in proxy.requests if b"calendar-multiget" in seen.body) == 1


def test_the_spool_gives_each_body_once_from_memory_or_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_spool, "IN_MEMORY", 100)
    spool = BodySpool()
    bodies = {f"/c/{i}.ics": event(i) for i in range(5)}
    for path, data in bodies.items():
        spool.add(path, f'"{path}"', data)
    spool.add("/c/gone.ics", None, b"x")
    spool.drop("/c/gone.ics")
    found, rest = spool.take(["/c/3.ics", "/c/gone.ics", "/c/0.ics", "/c/other.ics"])
    assert [(r.path, r.etag, r.data) for r in found] == [
        (p, f'"{p}"', bodies[p]) for p in ("/c/3.ics", "/c/0.ics")
    ]
    assert rest == ["/c/gone.ics", "/c/other.ics"]
    assert spool.take(["/c/3.ics"]) == ([], ["/c/3.ics"])
    assert len(spool) == 3
    found, rest = spool.take(["/c/1.ics", "/c/2.ics", "/c/4.ics"])
    assert [r.data for r in found] == [bodies[f"/c/{i}.ics"] for i in (1, 2, 4)] and not rest
    # All handed out: nothing is held any longer, and asking again finds nothing.
    assert len(spool) == 0 and spool.take(["/c/1.ics"]) == ([], ["/c/1.ics"])
    spool.close()
