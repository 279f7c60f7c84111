"""``syncd run`` as a real process against a real Radicale: schedule, health, metrics, reload, stop,
back-off. Every fact is read from what a user sees: the calendar, the HTTP listener, the store's
``sync_passes`` table, the exit code."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from processes import (
    SYNCD,
    SyncdProcess,
    by_binding,
    free_port,
    http_get,
    metric,
    passes,
    wait_for,
    write_config,
)
from world import World, meeting, uid

FAST = {"interval": 0.5, "jitter": 0.1, "max_backoff": 2.0, "lease_ttl": 3.0, "stop_timeout": 8.0}


def start(world: World, tmp_path: Path, name: str = "syncd", **daemon: object) -> tuple[SyncdProcess, int]:
    port = free_port()
    settings = {**FAST, "listen": f"127.0.0.1:{port}", **daemon}
    config = write_config(tmp_path / f"{name}.toml", world.store_url, world.bindings, **settings)
    return SyncdProcess(config, tmp_path / f"{name}.log"), port


def count_passes(world: World, binding: str, result: str | None = "ok") -> int:
    return sum(1 for p in passes(world.store_url) if p.binding == binding and (result is None or p.result == result))


def test_run_syncs_on_schedule_serves_health_and_metrics_and_stops_on_sigterm(world: World, tmp_path: Path) -> None:
    """Two bindings are synced again and again; /healthz says ok, /metrics counts what happened, and
    SIGTERM ends the process with exit code 0."""
    phone_a = world.bind("anna")
    world.bind("bob", owner="bob@example.com")
    world.save(meeting("A-1", "Pipeline review"))
    syncd, port = start(world, tmp_path)
    try:
        wait_for("three ok passes of each binding",
                 lambda: count_passes(world, "anna") >= 3 and count_passes(world, "bob") >= 3, 20)
        assert uid("A-1") in phone_a.items()

        status, body = http_get(port, "/healthz")
        assert (status, body) == (200, "ok\n")
        status, body = http_get(port, "/metrics")
        assert status == 200
        assert metric(body, "syncd_passes_total", binding="anna", result="ok") >= 3
        assert metric(body, "syncd_items_total", binding="anna", direction="to_calendar", action="created") == 1
        assert metric(body, "syncd_items_total", binding="bob", direction="to_calendar", action="created") == 0
        assert metric(body, "syncd_pass_duration_seconds_count", binding="bob") >= 3
        assert metric(body, "syncd_lease_held", binding="anna") == 1
        assert metric(body, "syncd_binding_failing", binding="anna") == 0
        assert metric(body, "syncd_last_success_timestamp_seconds", binding="anna") > time.time() - 10
        assert metric(body, "syncd_workers_live") == 1
        assert http_get(port, "/nowhere")[0] == 404

        stopped_at = time.monotonic()
        assert syncd.stop(timeout=10) == 0
        assert time.monotonic() - stopped_at < FAST["stop_timeout"]
    finally:
        syncd.kill()
    finished = [e for e in syncd.events() if e.get("event") == "pass finished"]
    assert finished and all(e["worker"].endswith(syncd.worker_suffix) and len(e["pass_id"]) == 12 for e in finished)
    assert {e["binding"] for e in finished} == {"anna", "bob"}
    assert syncd.logged("stopped")
    assert all(p.finished_at is not None for p in passes(world.store_url))
    # A clean stop gives the leases back at once.
    assert world.sql("SELECT count(*) FROM sync_bindings WHERE lease_owner IS NOT NULL") == [(0,)]


def test_sighup_adds_and_removes_bindings_and_refuses_a_broken_config(world: World, tmp_path: Path) -> None:
    """A reload takes a new binding up and drops a removed one without a restart; a config that does
    not validate is refused and the running one keeps syncing."""
    world.bind("anna")
    syncd, port = start(world, tmp_path)
    try:
        wait_for("anna syncing", lambda: count_passes(world, "anna") >= 2, 15)
        world.bind("bob", owner="bob@example.com")
        write_config(syncd.config, world.store_url, world.bindings, **FAST, listen=f"127.0.0.1:{port}")
        syncd.signal(signal.SIGHUP)
        wait_for("bob syncing after the reload", lambda: count_passes(world, "bob") >= 2, 10)
        assert syncd.logged("config reloaded")[-1]["added"] == ["bob"]

        syncd.config.write_text(syncd.config.read_text().replace('direction = "both"', "") + '\n[daemon2]\nx = 1\n')
        syncd.signal(signal.SIGHUP)
        refused = wait_for("the refusal", lambda: syncd.logged("config reload refused; the running config stays in force"), 10)
        assert "daemon2" in refused[-1]["error"]
        before = count_passes(world, "anna"), count_passes(world, "bob")
        wait_for("both still syncing", lambda: count_passes(world, "anna") > before[0] + 1
                 and count_passes(world, "bob") > before[1] + 1, 10)

        write_config(syncd.config, world.store_url, world.bindings[1:], **FAST, listen=f"127.0.0.1:{port}")
        syncd.signal(signal.SIGHUP)
        wait_for("anna dropped", lambda: syncd.logged("config reloaded")[-1:] and
                 syncd.logged("config reloaded")[-1]["removed"] == ["anna"], 10)
        wait_for("anna's lease given back", lambda: metric(http_get(port, "/metrics")[1], "syncd_lease_held", binding="anna") is None, 5)
        dropped = count_passes(world, "anna", result=None)
        bob = count_passes(world, "bob")
        time.sleep(1.5)
        assert count_passes(world, "anna", result=None) == dropped
        assert count_passes(world, "bob") > bob
        assert http_get(port, "/healthz")[0] == 200
        assert syncd.stop() == 0
    finally:
        syncd.kill()


def test_a_failing_binding_backs_off_to_the_ceiling_while_the_others_keep_syncing(world: World, tmp_path: Path) -> None:
    """A binding whose password is wrong is retried at growing intervals up to max_backoff and is
    reported failing, with the reason; the healthy binding keeps its interval."""
    world.bind("anna")
    world.bind("broken", remote={"password": "not-the-password"})
    syncd, port = start(world, tmp_path, interval=0.3, jitter=0.05, max_backoff=1.6)
    try:
        wait_for("five failed passes", lambda: count_passes(world, "broken", result="failed") >= 5, 20)
        body = http_get(port, "/metrics")[1]
        assert metric(body, "syncd_binding_failing", binding="broken") == 1
        assert metric(body, "syncd_binding_failing", binding="anna") == 0
        assert metric(body, "syncd_errors_total", binding="broken", kind="pass") >= 5
        assert metric(body, "syncd_binding_consecutive_failures", binding="broken") >= 5

        shown = subprocess.run([*SYNCD, "--config", str(syncd.config), "status", "--json"],
                               capture_output=True, text=True, timeout=20, check=True)
        rows = {row["name"]: row for row in json.loads(shown.stdout)}
        assert rows["broken"]["state"] == "failing" and "401" in rows["broken"]["last_error"]
        assert rows["broken"]["consecutive_failures"] >= 5
        assert rows["anna"]["state"] == "ok" and rows["anna"]["lease_owner"].endswith(syncd.worker_suffix)
        text_status = subprocess.run([*SYNCD, "--config", str(syncd.config), "status"],
                                     capture_output=True, text=True, timeout=20, check=True).stdout
        assert f"held by worker {rows['broken']['lease_owner']}" in text_status
        assert "failed passes in a row" in text_status
        assert syncd.stop() == 0
    finally:
        syncd.kill()
    runs = by_binding(passes(world.store_url))
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in zip(runs["broken"], runs["broken"][1:])]
    # 0.3 s doubled per failure: 0.6, 1.2, then the 1.6 s ceiling (plus up to 0.05 s of jitter).
    assert 0.5 < gaps[0] < 0.9, gaps
    assert 1.1 < gaps[1] < 1.5, gaps
    assert all(1.5 < gap < 1.9 for gap in gaps[2:]), gaps
    healthy = [(b.started_at - a.started_at).total_seconds() for a, b in zip(runs["anna"], runs["anna"][1:])]
    assert len(runs["anna"]) > 3 * len(runs["broken"])
    assert max(healthy) < 0.8, healthy


def test_sigterm_lets_the_pass_under_way_finish(world: World, tmp_path: Path) -> None:
    """A pass waiting on a slow server when SIGTERM comes is finished (here: its 2 s timeout), then
    the process exits 0 and no pass starts after the signal."""
    world.bind("anna")
    world.proxy.mode, world.proxy.hang_seconds = "hang", 4.0
    syncd, _ = start(world, tmp_path)
    try:
        wait_for("a request hanging", lambda: world.proxy.count() >= 1, 15)
        signalled = time.monotonic()
        assert syncd.stop() == 0
        waited = time.monotonic() - signalled
    finally:
        syncd.kill()
    assert 1.0 < waited < FAST["stop_timeout"]
    (only,) = passes(world.store_url)
    assert only.finished_at is not None and only.result == "failed"


def test_a_pass_longer_than_stop_timeout_is_left_and_the_process_still_exits_0(world: World, tmp_path: Path) -> None:
    """stop_timeout bounds the stop: the pass is abandoned (it is safe to repeat), the exit is clean."""
    world.bind("anna")
    world.proxy.mode, world.proxy.hang_seconds = "hang", 4.0
    syncd, _ = start(world, tmp_path, stop_timeout=0.5)
    try:
        wait_for("a request hanging", lambda: world.proxy.count() >= 1, 15)
        signalled = time.monotonic()
        assert syncd.stop() == 0
        assert time.monotonic() - signalled < 1.5
    finally:
        syncd.kill()
    assert syncd.logged("stopped with passes still running; they are repeated by the next pass")
    (only,) = passes(world.store_url)
    assert only.finished_at is None
