"""Items are known by what they carry (UID, X-SYNCD-ID), not by where a server keeps them.

Real Radicale on loopback; a renaming server is Radicale behind :class:`dav_proxy.Renaming`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dav_proxy import DavProxy, Renaming, dav_proxy
from radicale_server import PASSWORD, USER, put_raw, radicale, unique_name

sys.path.insert(0, str(Path(__file__).parent.parent / "engine"))
from world import World, meeting

from syncd.connectors.caldav import CalDavConfig, CalDavConnector
from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.mapping.context import MappingContext
from syncd.mapping.ical import to_ical
from syncd.mapping.identity import resource_name, uid_for
from syncd.model import Activity, CrmUser, Kind

__all__ = ["dav_proxy", "radicale"]  # pytest fixtures

AMS = ZoneInfo("Europe/Amsterdam")
OWNER = "alice@example.com"
CTX = MappingContext(owner=CrmUser(OWNER, "Alice", "Europe/Amsterdam"))


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
    caldav = CalDavConnector(CalDavConfig(calendar, None, USER, PASSWORD, "basic", timeout=5), CTX)
    yield caldav
    caldav.close()


@pytest.mark.parametrize("crm_id", ["a/b", "x(1)", "100%25", "ü ber?#", "../../etc", "." * 3])
def test_no_crm_id_can_break_a_resource_name(connector: CalDavConnector, crm_id: str) -> None:
    """Ids with '/', '(', '%', '?', '#' or dots: the item is created, read, found, updated, deleted."""
    written = connector.create(appointment(crm_id))
    assert written.ref.rsplit("/", 1)[1] == resource_name(crm_id)
    [item] = connector.changes(None, {}).changed
    assert (item.crm_id, item.uid, item.ref) == (crm_id, uid_for(crm_id), written.ref)
    found = connector.find(crm_id, Kind.APPOINTMENT)
    assert found is not None and found.ref == written.ref
    again = connector.update(written.ref, written.etag, appointment(crm_id, "Moved"), item.raw)
    assert again.ref == written.ref
    connector.delete(again.ref, again.etag)
    assert connector.changes(None, {}).changed == []


def test_an_item_under_its_old_name_is_read_updated_and_found_where_it_is(
    connector: CalDavConnector, calendar: str
) -> None:
    """Items an older syncd named after the UID keep their name: no rename churn."""
    direct = calendar
    assert put_raw(direct + "A7%40syncd.ics", to_ical(appointment("A7"), CTX)) == 201
    [item] = connector.changes(None, {}).changed
    assert item.crm_id == "A7" and item.ref.endswith("/A7@syncd.ics")
    found = connector.find("A7", Kind.APPOINTMENT)  # by UID: the new name holds nothing
    assert found is not None and found.ref == item.ref
    updated = connector.update(item.ref, item.etag, appointment("A7", "Renamed meeting"), item.raw)
    assert updated.ref == item.ref
    [again] = connector.changes(None, {}).changed
    assert again.ref == item.ref and again.activity is not None and again.activity.subject == "Renamed meeting"


@pytest.mark.parametrize("location", [True, False], ids=["with-location", "without-location"])
def test_a_create_the_server_stored_elsewhere_is_followed(dav_proxy: DavProxy, connector: CalDavConnector,
                                                          location: bool) -> None:
    """The ref is where the item is: from Location, else looked up by UID after a 410 at the written name."""
    renaming = Renaming(dav_proxy, location=location)
    # Radicale sends an ETag on PUT; a renaming server that says nothing more is what is hard.
    dav_proxy.after.append(lambda request, answer: _without_etag(answer) if request.method == "PUT" else answer)
    written = connector.create(appointment("R1"))
    assert written.ref.endswith("/" + Renaming.name_for(uid_for("R1")))
    assert written.etag is not None
    assert list(renaming.renamed.values()) == [written.ref]
    [item] = connector.changes(None, {}).changed
    assert (item.ref, item.etag) == (written.ref, written.etag)


def _without_etag(answer):
    answer.headers = [(k, v) for k, v in answer.headers if k.lower() != "etag"]
    return answer


# -- the engine on a renaming server -------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, radicale: EmbeddedRadicale, dav_proxy: DavProxy) -> World:
    return World(tmp_path, radicale, dav_proxy)  # type: ignore[arg-type]  # only .url is used


@pytest.fixture
def renaming_world(world: World, dav_proxy: DavProxy) -> World:
    world.renaming = Renaming(dav_proxy, location=False)  # type: ignore[attr-defined]
    return world


def test_a_renaming_server_never_makes_syncd_delete_crm_activities(renaming_world: World) -> None:
    """The issue's scenario: a server that stores a PUT under its own name and answers 410 at the
    written one. The items are followed to their names (links updated), never taken as deleted."""
    world = renaming_world
    phone = world.bind()
    world.save(*(meeting(f"r{i}", f"Meeting {i}", days=i + 1) for i in range(3)))
    first = world.sync()
    assert first.result == "ok", first.error
    assert first.counts["remote_created"] == 3 and not first.errors, first.errors
    hrefs = set(phone.hrefs())
    assert len(hrefs) == 3 and set(world.renaming.renamed.values()) == hrefs  # type: ignore[attr-defined]
    links = {ref for (ref,) in world.sql("SELECT ref FROM sync_links")}
    assert links == hrefs
    for _ in range(2):
        again = world.sync()
        assert again.result == "ok" and not again.errors, (again.error, again.errors)
        assert again.counts["crm_deleted"] == 0 and again.counts["remote_created"] == 0, dict(again.counts)
    assert len(world.all()) == 3
    # Both directions still work on the renamed items.
    world.save(meeting("r0", "Meeting 0, moved room", days=1))
    assert world.sync().counts["remote_updated"] == 1
    assert len(phone.hrefs()) == 3


def test_links_to_old_hrefs_follow_the_item_to_its_new_name(world: World) -> None:
    """An item that moved on the server (an admin, a migration) is the same item: the link's ref
    follows it; no CRM deletion, no second item."""
    phone = world.bind()
    world.save(meeting("m1", "Planning"), meeting("m2", "Review", days=4))
    world.sync()
    [(old,)] = world.sql("SELECT ref FROM sync_links WHERE activity_id = 'm1'")
    status, data, _ = phone._request("GET", old)
    assert status == 200
    new = old.rsplit("/", 1)[0] + "/moved-by-admin.ics"
    assert phone._request("DELETE", old)[0] in (200, 204)  # Radicale keeps one item per UID
    assert phone._request("PUT", new, data, {"Content-Type": "text/calendar"})[0] == 201
    report = world.sync()
    assert report.result == "ok" and not report.errors, (report.error, report.errors)
    assert report.counts["crm_deleted"] == 0 and report.counts["remote_created"] == 0, dict(report.counts)
    assert world.sql("SELECT ref FROM sync_links WHERE activity_id = 'm1'") == [(new,)]
    world.save(meeting("m1", "Planning (moved)"))
    assert world.sync().counts["remote_updated"] == 1
    assert b"Planning (moved)" in phone._request("GET", new)[1]
