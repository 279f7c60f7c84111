"""``syncd sync`` sends a CalDAV binding's first request (its sync-collection REPORT) while the process
starts (syncd.connectors.caldav_early), and the pass uses that reply only if its own request is the
same: counted at a real Radicale behind the counting proxy."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

from radicale_server import PASSWORD, Answer, Seen
from world import World, meeting, soon

from syncd.app import App
from syncd.connectors import caldav_protocol as dav
from syncd.connectors.caldav import _load_state
from syncd.connectors.caldav_early import EarlyReplies, _saved_token, send_early
from syncd.store.peek import remote_states


def run_sync(world: World) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", "--config", str(world.config_file()), "sync"],
                          check=False, capture_output=True, text=True, timeout=120)


def sync_reports(world: World) -> list[bytes]:
    """The bodies of the sync-collection REPORTs the server received."""
    return [s.body for s in world.proxy.requests if s.method == "REPORT" and b"sync-collection" in s.body]


def early_replies(world: World) -> tuple[EarlyReplies, threading.Event]:
    """The early requests ``syncd sync`` would send for ``world``, and an event set once the server
    has answered the early REPORT (what it says is fixed from then on)."""
    answered = threading.Event()

    def mark(seen: Seen, answer: Answer) -> Answer:
        if b"sync-collection" in seen.body:
            answered.set()
        return answer

    world.proxy.rewrite = mark
    return send_early(world.config().bindings, remote_states(world.store_url)), answered


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
    state = remote_states(world.store_url)["anna"]
    # What the early request reads of the state is what the connector reads of it.
    saved, scheme = _load_state(state)
    [(path, collection)] = saved.items()
    assert path == dav.canonical_path(world.bindings[0]["remote"]["url"], world.bindings[0]["remote"]["url"])
    assert _saved_token(state, path) == (collection.token, scheme) and collection.token

    world.proxy.reset()
    early, answered = early_replies(world)
    assert answered.wait(10)
    # Made after the server answered the early REPORT: a pass that asked itself now would see it.
    phone.create_event("late-1", "After the early reply", soon(days=6))
    config = world.config()
    report = App(config, early=early).run_pass(config.binding("anna"))
    assert report.result == "ok" and sum(report.counts.values()) == 0, dict(report.counts)
    assert len(sync_reports(world)) == 1
    # The pass saved the early reply's token: the next pass asks from there and gets the event.
    assert world.sync().counts["crm_created"] == 1


def test_an_early_reply_to_a_token_the_pass_no_longer_holds_is_not_used(world: World) -> None:
    phone = world.bind()
    world.save(meeting("e3"))
    world.sync()
    early, answered = early_replies(world)
    assert answered.wait(10)
    # Another process's pass, between the early request and this one, moves the saved token on.
    phone.create_event("between-1", "Between", soon(days=7))
    assert world.sync().counts["crm_created"] == 1
    moved = remote_states(world.store_url)["anna"]

    world.proxy.reset()
    config = world.config()
    report = App(config, early=early).run_pass(config.binding("anna"))
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
