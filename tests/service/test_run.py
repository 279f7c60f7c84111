"""``syncd run`` as a real process against a real Radicale: schedule, health, metrics, reload, stop,
back-off. Every fact is read from what a user sees: the calendar, the HTTP listener, the store's
``sync_passes`` table, the exit code."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from processes import SyncdProcess, by_binding, free_port, http_get, metric, passes, wait_for, write_config
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
        assert metric(body, "syncd_items_total", binding="bob", direction="to_calendar", action="created") is None
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
