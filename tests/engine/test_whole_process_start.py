"""A whole ``syncd sync`` process: it loads only what a CalDAV pass needs, and the merge bases it
reads lazily from the store still settle an edit on both sides."""

from __future__ import annotations

import json

from sync_process import sync_process
from world import World, master, meeting, uid

#: Code a CalDAV-only ``syncd sync`` must not import: the other connectors and their libraries,
#: the daemon's scheduler and metrics, rich (structlog would load it for tracebacks syncd
#: renders as scrubbed text), and the caldav library with its HTTP stack and YAML config loader
#: (syncd's CalDAV transport is http.client).
NOT_NEEDED = ("exchangelib", "msal", "requests_ntlm", "syncd.connectors.exchange", "syncd.connectors.graph",
              "syncd.mapping.ews", "syncd.mapping.graph", "apscheduler", "prometheus_client", "rich", "pygments",
              "caldav", "niquests", "requests", "urllib3", "urllib3_future", "h11", "jh2", "qh3", "wassima", "yaml")


def test_a_caldav_sync_process_loads_no_other_connector_nor_rich(world: World) -> None:
    phone = world.bind()
    world.save(meeting("w1", "Kick-off"))
    summary, loaded = sync_process(world, NOT_NEEDED)
    assert "anna: ok: to calendar 1 created" in summary
    assert str(master(phone.get(uid("w1"))[0])["SUMMARY"]) == "Kick-off"
    assert loaded == []


def test_a_merge_base_that_no_longer_reads_costs_the_merge_not_the_pass(world: World) -> None:
    """Bases are decoded when a merge asks for one, mid-plan: one that does not read (stored by an
    older syncd) makes every difference a clash, settled by the policy, and fails nothing."""
    phone = world.bind(conflict="merge")
    world.save(meeting("k1", "Kick-off", location="Room A"), meeting("k2", "Review", days=4))
    world.sync()
    world.sql("UPDATE sync_links SET base = :base WHERE activity_id = 'k1'", base=json.dumps({"kind": "nonsense"}))
    world.save(meeting("k1", "Kick-off (CRM)", location="Room A"))
    phone.edit(uid("k1"), summary="Kick-off (phone)", location="Room B")
    phone.edit(uid("k2"), location="Room C")

    report = world.sync()
    assert report.result == "ok", report.error
    assert report.counts["errors"] == 0, report.errors
    # Without a base the phone's location is a clash too, and merge_winner (crm) takes both fields.
    assert (world.get("k1").subject, world.get("k1").location) == ("Kick-off (CRM)", "Room A")
    assert str(master(phone.get(uid("k1"))[0])["LOCATION"]) == "Room A"
    # The other item's base reads: the phone's edit comes in as usual.
    assert world.get("k2").location == "Room C"
    # The write stored a base that reads: the next edit on both sides merges field by field.
    world.save(meeting("k1", "Kick-off (CRM 2)", location="Room A"))
    phone.edit(uid("k1"), summary="Kick-off (CRM)", location="Room D")
    world.sync()
    assert (world.get("k1").subject, world.get("k1").location) == ("Kick-off (CRM 2)", "Room D")
