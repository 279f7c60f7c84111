"""What a pass costs in requests right after one that did work: it must not read again what it just
read or wrote (a pull of thousands of items followed by a pass that fetches them all is the cost this
guards against)."""

from __future__ import annotations

from world import World, soon


def test_the_pass_after_a_pull_reads_nothing_again(world: World) -> None:
    phone = world.bind()
    world.sync()
    for i in range(6):
        phone.create_event(f"phone-{i}@example.org", f"Visit {i}", soon(i + 1, 9))
    pulled = world.sync()
    assert pulled.counts["crm_created"] == 6, dict(pulled.counts)
    world.proxy.reset()
    report = world.sync()
    assert report.result == "ok", report.error
    assert sum(report.counts.values()) == 0, dict(report.counts)
    assert [s.method for s in world.proxy.requests] == ["REPORT"]


def test_after_a_pull_an_item_deleted_on_the_phone_is_still_seen_as_deleted(world: World) -> None:
    phone = world.bind()
    world.sync()
    phone.create_event("phone-x@example.org", "Site visit", soon(2, 9))
    world.sync()
    phone.delete("phone-x@example.org")
    report = world.sync()
    assert report.counts["crm_deleted"] == 1, dict(report.counts)
    assert world.all() == []
