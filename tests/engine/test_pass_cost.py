"""What a pass costs in requests right after one that did work: it must not read again what it just
read or wrote (a pull of thousands of items followed by a pass that fetches them all is the cost this
guards against)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import pytest
from radicale_server import Answer, Seen
from world import World, master, meeting, soon, uid


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


# --- updates from the CRM: one batched read, not a GET before every PUT ----------------------------


def _crm_edits(world: World, ids: list[str], word: str = "Edited") -> None:
    world.save(*(meeting(i, f"{word} {i}", location="Room A") for i in ids))


def _multiget(seen: Seen) -> bool:
    return seen.method == "REPORT" and b"calendar-multiget" in seen.body


def test_a_pass_pushing_crm_edits_costs_one_put_each_and_a_constant(world: World) -> None:
    """The calendar did not change the items: their bodies (which other clients' data must survive)
    come in one calendar-multiget, so N edits cost N PUTs and the same few requests for any N."""
    phone = world.bind()
    ids = [f"e{n}" for n in range(6)]
    world.save(*(meeting(key, f"Meeting {key}", days=n + 1) for n, key in enumerate(ids)))
    world.sync()
    phone.edit(uid("e0"), x_phone_color="#FF2968")  # another client's property, read back by the pass
    world.sync()
    others: list[Counter[str]] = []
    for word, edited in (("Edited", ids[:2]), ("Renamed", ids)):
        _crm_edits(world, edited, word)
        world.proxy.reset()
        report = world.sync()
        assert report.result == "ok", report.error
        assert report.counts["remote_updated"] == len(edited), dict(report.counts)
        methods = Counter(s.method for s in world.proxy.requests)
        assert methods.pop("PUT") == len(edited)
        assert methods["GET"] == 0, methods
        others.append(methods)
    assert others[0] == others[1] and sum(others[0].values()) <= 3, others
    event = master(phone.get(uid("e0"))[0])
    assert (str(event["SUMMARY"]), str(event["X-PHONE-COLOR"])) == ("Renamed e0", "#FF2968")


def test_an_item_changed_between_the_batched_read_and_the_put_is_read_again(world: World) -> None:
    """The phone edits an item after syncd's multiget read it: the PUT's If-Match (the etag that came
    with that body) refuses, and the pass reads the item again and merges both edits."""
    phone = world.bind()
    world.save(meeting("r1", "Kick-off", location="Room A"), meeting("r2", "Review", days=4))
    world.sync()
    world.save(meeting("r1", "Kick-off (CRM)", location="Room A"), meeting("r2", "Review (CRM)", days=4))
    raced: list[bool] = []

    def phone_edits_after_the_batched_read(seen: Seen, answer: Answer) -> Answer:
        if _multiget(seen) and not raced:
            raced.append(True)
            phone.edit(uid("r1"), location="Room B")
        return answer

    world.proxy.rewrite = phone_edits_after_the_batched_read
    report = world.sync()
    world.proxy.rewrite = None
    assert raced and report.result == "ok", report.error
    assert report.counts["races"] == 1, dict(report.counts)
    assert world.get("r1").location == "Room B"
    event = master(phone.get(uid("r1"))[0])
    assert (str(event["SUMMARY"]), str(event["LOCATION"])) == ("Kick-off (CRM)", "Room B")
    assert str(master(phone.get(uid("r2"))[0])["SUMMARY"]) == "Review (CRM)"


def _without_first_response(seen: Seen, answer: Answer) -> Answer:
    body = re.sub(rb"<(?:[\w.-]+:)?response\b.*?</(?:[\w.-]+:)?response>", b"", answer.body, count=1, flags=re.DOTALL)
    return Answer(answer.status, answer.headers, body)


def _failed(seen: Seen, answer: Answer) -> Answer:
    return Answer(500, [("Content-Type", "text/plain")], b"injected failure")


@pytest.mark.parametrize(("multiget", "gets"), [(_failed, 3), (_without_first_response, 1)], ids=["500", "left-out"])
def test_a_batched_read_that_fails_or_leaves_an_item_out_costs_a_get_not_the_write(
    world: World, multiget: Callable[[Seen, Answer], Answer], gets: int
) -> None:
    """A multiget answering 500, or one without an item: those items are read with a GET each, as
    without the batch, and every edit reaches the calendar with the phone's data kept."""
    phone = world.bind()
    ids = ["m0", "m1", "m2"]
    world.save(*(meeting(key, f"Meeting {key}", days=n + 1) for n, key in enumerate(ids)))
    world.sync()
    for i in ids:
        phone.edit(uid(i), x_phone_color="#FF2968")
    world.sync()
    _crm_edits(world, ids)
    world.proxy.reset()
    world.proxy.rewrite = lambda seen, answer: multiget(seen, answer) if _multiget(seen) else answer
    report = world.sync()
    world.proxy.rewrite = None
    assert report.result == "ok", report.error
    assert (report.counts["remote_updated"], report.counts["errors"]) == (3, 0), dict(report.counts)
    assert sum(1 for seen in world.proxy.requests if _multiget(seen)) == 1
    assert (world.proxy.count("GET"), world.proxy.count("PUT")) == (gets, 3)
    for i in ids:
        event = master(phone.get(uid(i))[0])
        assert (str(event["SUMMARY"]), str(event["X-PHONE-COLOR"])) == (f"Edited {i}", "#FF2968")
