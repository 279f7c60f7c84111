"""``syncd sync`` sends a CalDAV binding's first requests while the process starts
(syncd.connectors.caldav_early): a sync-collection REPORT from the saved token, or the first pull's
PROPFIND and listing with every item's data. The pass uses each reply only if its own request is the
same: counted at a real Radicale behind the counting proxy."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

from connectors.test_caldav_auth import DigestGate
from dav_proxy import Answer as DavAnswer
from dav_proxy import DavProxy, Request, dav_proxy
from radicale_server import PASSWORD, Answer, Seen
from world import World, meeting, soon

from syncd.app import App
from syncd.cli import _early_requests
from syncd.connectors import caldav_protocol as dav
from syncd.connectors.caldav import _load_state
from syncd.connectors.caldav_early import EarlyReplies, EarlyReply, _saved_token
from syncd.engine.runner import PassReport
from syncd.store.peek import saved

__all__ = ["dav_proxy"]  # pytest fixture

#: What a first pull of a calendar that offers sync-collection sends, with or without early requests:
#: the PROPFIND asking what the collection offers (refused once: nothing says yet that the server
#: wants Basic), again with Basic, and one listing with every item's data.
FIRST_PULL = ["PROPFIND", "PROPFIND", "REPORT"]


def remote_states(world: World) -> dict[str, str]:
    read = saved(world.store_url)
    assert read is not None
    return dict(read.states)


def run_sync(world: World) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", "--config", str(world.config_file()), "sync"],
                          check=False, capture_output=True, text=True, timeout=120)


def sync_reports(world: World) -> list[bytes]:
    """The bodies of the sync-collection REPORTs the server received."""
    return [s.body for s in world.proxy.requests if s.method == "REPORT" and b"sync-collection" in s.body]


def early_requests(world: World, *names: str) -> tuple[EarlyReplies, threading.Event]:
    """What ``syncd sync`` (of ``names``, else of every binding) sends early for ``world``, as the
    command picks it, and an event set once the server has answered the early sync-collection REPORT
    (what it says is fixed from then on)."""
    answered = threading.Event()

    def mark(seen: Seen, answer: Answer) -> Answer:
        if b"sync-collection" in seen.body:
            answered.set()
        return answer

    world.proxy.rewrite = mark
    early = _early_requests(world.config(), names)
    assert early is not None
    return early, answered


def pass_taking(world: World, early: EarlyReplies) -> PassReport:
    """Anna's pass, offered the early replies as ``syncd sync`` offers them."""
    config = world.config()
    return App(config, early=early).run_pass(config.binding("anna"))


def subjects(world: World) -> list[str]:
    return sorted(a.subject for a in world.all())


def test_a_no_change_sync_makes_one_request_and_a_change_on_the_server_is_still_pulled(world: World) -> None:
    phone = world.bind()
    world.save(meeting("e1"))
    assert world.sync().counts["remote_created"] == 1

    world.proxy.reset()
    result = run_sync(world)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "anna: ok: to calendar 0 created, 0 updated, 0 deleted; to CRM 0 created" in result.stdout
    assert [s.method for s in world.proxy.requests] == ["REPORT"]

    phone.create_event("phone-1", "Made on the phone", soon(days=5))
    world.proxy.reset()
    result = run_sync(world)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "to CRM 1 created" in result.stdout
    assert len(sync_reports(world)) == 1
    assert [a.subject for a in world.all() if a.subject == "Made on the phone"] == ["Made on the phone"]


def test_the_pass_takes_the_early_reply_and_the_next_pass_pulls_what_changed_after_it(world: World) -> None:
    phone = world.bind()
    world.save(meeting("e2"))
    world.sync()
    state = remote_states(world)["anna"]
    # What the early request reads of the state is what the connector reads of it.
    loaded, scheme = _load_state(state)
    [(path, collection)] = loaded.items()
    assert path == dav.canonical_path(world.bindings[0]["remote"]["url"], world.bindings[0]["remote"]["url"])
    assert _saved_token(state, path) == (collection.token, scheme) and collection.token

    world.proxy.reset()
    early, answered = early_requests(world)
    assert answered.wait(10)
    # Made after the server answered the early REPORT: a pass that asked itself now would see it.
    phone.create_event("late-1", "After the early reply", soon(days=6))
    report = pass_taking(world, early)
    assert report.result == "ok" and sum(report.counts.values()) == 0, dict(report.counts)
    assert len(sync_reports(world)) == 1
    # The pass saved the early reply's token: the next pass asks from there and gets the event.
    assert world.sync().counts["crm_created"] == 1


def test_an_early_reply_to_a_token_the_pass_no_longer_holds_is_not_used(world: World) -> None:
    phone = world.bind()
    world.save(meeting("e3"))
    world.sync()
    early, answered = early_requests(world)
    assert answered.wait(10)
    # Another process's pass, between the early request and this one, moves the saved token on.
    phone.create_event("between-1", "Between", soon(days=7))
    assert world.sync().counts["crm_created"] == 1
    moved = remote_states(world)["anna"]

    world.proxy.reset()
    report = pass_taking(world, early)
    assert report.result == "ok" and sum(report.counts.values()) == 0, dict(report.counts)
    [own] = sync_reports(world)
    token, _ = _saved_token(moved, next(iter(_load_state(moved)[0])))
    assert own == dav.sync_collection_body(token)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failing_early_request_changes_nothing_the_user_sees(world: World) -> None:
    world.bind()
    world.save(meeting("e4"))
    world.sync()
    remote = world.bindings[0]["remote"]
    good_url = remote["url"]
    for change in ({"password": "wrong-password-456"},
                   {"url": good_url.replace(world.proxy.url, f"http://127.0.0.1:{_closed_port()}")}):
        remote.update(change)
        # The same pass without any early request (in this process): the error a user must see.
        expected = world.sync().error
        assert expected
        world.proxy.reset()
        result = run_sync(world)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"\n  error: {expected}\n" in result.stdout
        assert "Traceback" not in result.stderr and "Exception in thread" not in result.stderr
        assert "wrong-password-456" not in result.stdout + result.stderr
        if "password" in change:
            # The early REPORT was refused, and the pass asked again itself (and was refused).
            assert len(sync_reports(world)) == 2
        remote.update({"password": PASSWORD, "url": good_url})


def test_a_first_sync_pulls_every_item_once_with_the_requests_of_a_pull_alone(world: World) -> None:
    phone = world.bind()
    for day in range(3):
        phone.create_event(f"phone-{day}", f"Phone {day}", soon(days=day + 2))
    world.proxy.reset()
    result = run_sync(world)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "anna: ok: to calendar 0 created, 0 updated, 0 deleted; to CRM 3 created" in result.stdout
    assert subjects(world) == ["Phone 0", "Phone 1", "Phone 2"]
    # The early requests are the pull's own: none is sent twice.
    assert [s.method for s in world.proxy.requests] == FIRST_PULL
    assert sync_reports(world) == [dav.sync_collection_body(None, data=True)]


def test_a_first_pull_takes_both_early_replies_and_the_next_pass_pulls_what_came_after(world: World) -> None:
    phone = world.bind()
    for day in range(3):
        phone.create_event(f"first-{day}", f"First {day}", soon(days=day + 2))
    early, answered = early_requests(world)
    assert answered.wait(10)
    # Made after the server listed the calendar for the early request: a pass that asked itself now
    # would see it.
    phone.create_event("late-2", "After the early listing", soon(days=8))
    report = pass_taking(world, early)
    assert report.result == "ok" and report.counts["crm_created"] == 3, dict(report.counts)
    # The pass sent none of its own: the PROPFIND's reply was taken, and with it the scheme the early
    # PROPFIND's 401 taught, without which the listing's request would not have been the same.
    assert [s.method for s in world.proxy.requests] == FIRST_PULL
    assert subjects(world) == ["First 0", "First 1", "First 2"]
    # The pass saved the early listing's token: the next pass asks from there and gets the event.
    world.proxy.reset()
    assert world.sync().counts["crm_created"] == 1
    assert len(sync_reports(world)) == 1
    assert subjects(world) == ["After the early listing", "First 0", "First 1", "First 2"]


def test_a_binding_with_links_but_no_state_gets_no_early_first_pull(world: World) -> None:
    phone = world.bind()
    phone.create_event("linked-1", "Linked", soon(days=4))
    assert world.sync().counts["crm_created"] == 1
    # A pass that wrote links and failed before its state was saved: its next pass knows items.
    world.sql("UPDATE sync_bindings SET remote_state = NULL")
    early, _ = early_requests(world)
    assert early.take("anna") is None
    world.proxy.reset()
    result = run_sync(world)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "to CRM 0 created, 0 updated, 0 deleted" in result.stdout
    # The pass's own PROPFIND and listing, without the items' data (it knows them); nothing early.
    assert world.proxy.count("PROPFIND") == 2
    assert sync_reports(world) == [dav.sync_collection_body(None)]


def test_an_early_first_pull_the_pass_cannot_use_is_dropped_where_the_pass_goes_its_own_way(world: World) -> None:
    phone = world.bind()
    phone.create_event("own-1", "Own way", soon(days=4))
    early, answered = early_requests(world)
    assert answered.wait(10)
    # Between the early requests and the pass, another process's pass links the item and fails
    # before saving its state: this pass asks the same PROPFIND, then a listing without data.
    assert world.sync().counts["crm_created"] == 1
    world.sql("UPDATE sync_bindings SET remote_state = NULL")
    phone.edit("own-1", summary="Edited on the phone")
    world.proxy.reset()
    report = pass_taking(world, early)
    assert report.result == "ok", report.error
    assert report.counts["crm_updated"] == 1 and report.counts["crm_created"] == 0, dict(report.counts)
    assert subjects(world) == ["Edited on the phone"]
    # The PROPFIND was taken from the early replies; the early listing was not: the pass asked itself.
    assert [s.method for s in world.proxy.requests] == ["REPORT", "REPORT"]
    assert sync_reports(world)[0] == dav.sync_collection_body(None)


def test_an_early_first_pull_whose_state_moved_on_is_not_used(world: World) -> None:
    phone = world.bind()
    phone.create_event("moved-1", "Moved on", soon(days=4))
    early, answered = early_requests(world)
    assert answered.wait(10)
    # Another process's pass ran in between and saved a token: this pass starts from it.
    assert world.sync().counts["crm_created"] == 1
    world.proxy.reset()
    report = pass_taking(world, early)
    assert report.result == "ok" and sum(report.counts.values()) == 0, dict(report.counts)
    assert subjects(world) == ["Moved on"]
    url = world.bindings[0]["remote"]["url"]
    token, _ = _saved_token(remote_states(world)["anna"], dav.canonical_path(url, url))
    assert sync_reports(world) == [dav.sync_collection_body(token)]


def test_an_early_first_pull_signed_otherwise_than_the_pass_would_sign_is_not_used(world: World) -> None:
    phone = world.bind()
    phone.create_event("scheme-1", "Scheme", soon(days=4))
    early, answered = early_requests(world)
    assert answered.wait(10)
    # The pass's transport sends Basic up front (auth = "basic"): not the request sent early, which
    # went without and learnt Basic from the server's 401.
    world.bindings[0]["remote"]["auth"] = "basic"
    world.proxy.reset()
    report = pass_taking(world, early)
    assert report.result == "ok" and report.counts["crm_created"] == 1, dict(report.counts)
    assert subjects(world) == ["Scheme"]
    assert [s.method for s in world.proxy.requests] == ["PROPFIND", "REPORT"]
    assert sync_reports(world) == [dav.sync_collection_body(None, data=True)]


def test_only_the_binding_the_sync_runs_first_gets_an_early_first_pull(world: World) -> None:
    world.bind("anna")
    world.bind("bob")
    early, _ = early_requests(world)
    assert isinstance(early.take("anna"), EarlyReply) and early.take("bob") is None
    early, _ = early_requests(world, "bob", "anna")
    assert isinstance(early.take("bob"), EarlyReply) and early.take("anna") is None


def test_a_first_pull_from_a_digest_server_takes_both_early_replies_and_writes_after(
        world: World, dav_proxy: DavProxy) -> None:
    phone = world.bind()
    phone.create_event("digest-1", "From the phone", soon(days=4))
    world.save(meeting("e5", "From the CRM"))
    gate = DigestGate()
    dav_proxy.before.append(gate)
    answered = threading.Event()

    def mark(request: Request, answer: DavAnswer) -> DavAnswer:
        if b"sync-collection" in request.body:
            answered.set()
        return answer

    dav_proxy.after.append(mark)
    remote = world.bindings[0]["remote"]
    remote["url"] = remote["url"].replace(world.proxy.url, dav_proxy.url)
    early = _early_requests(world.config(), ())
    assert early is not None and answered.wait(10)
    # A server gives each challenge a nonce of its own (the gate keeps one until told otherwise): the
    # nonce the early transport counts on is not reused by another client.
    gate.rotate()
    report = pass_taking(world, early)
    assert report.result == "ok", report.error
    assert report.counts["crm_created"] == 1 and report.counts["remote_created"] == 1, dict(report.counts)
    assert subjects(world) == ["From the CRM", "From the phone"]
    assert len(phone.items()) == 2
    # The early PROPFIND's 401 taught Digest; the pass, handed the scheme with the reply, took the
    # Digest-signed listing too, then met the server's challenge at its own first request (the
    # early transport's nonce and count stay with it) and answered it.
    methods = [r.method for r in dav_proxy.requests]
    assert methods[:5] == [*FIRST_PULL, "PUT", "PUT"] and "PROPFIND" not in methods[5:], methods
    assert [r.body for r in dav_proxy.requests].count(dav.sync_collection_body(None, data=True)) == 1
    assert gate.challenges == 2
