"""``syncd sync``, ``status`` and ``conflicts`` as processes, against a real Radicale."""

from __future__ import annotations

import json
import subprocess
import sys

from world import World, meeting, uid


def run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", "--config", str(world.config_file()), *args],
                          check=False, capture_output=True, text=True, timeout=120)


def test_sync_prints_a_summary_and_fails_when_a_binding_fails(world: World) -> None:
    world.bind("anna")
    world.bind("broken", remote={"password": "wrong-password-123"})
    world.save(meeting("s1"))
    result = run(world, "sync")
    assert result.returncode == 1
    assert "anna: ok: to calendar 1 created" in result.stdout
    assert "broken: failed" in result.stdout and "refused the credentials" in result.stdout
    assert "wrong-password-123" not in result.stdout + result.stderr
    only = run(world, "sync", "--binding", "anna")
    assert only.returncode == 0 and "broken" not in only.stdout

    status = json.loads(run(world, "status", "--json").stdout)
    by_name = {row["name"]: row for row in status}
    assert by_name["anna"]["state"] == "ok" and by_name["anna"]["links"] == 1
    assert by_name["broken"]["state"] == "failing" and "401" in by_name["broken"]["last_error"]
    text = run(world, "status").stdout
    assert "broken: failing" in text and "why:" in text


def test_dry_run_shows_the_plan_and_changes_nothing(world: World) -> None:
    phone = world.bind()
    world.save(meeting("d1"), meeting("d2", days=4))
    result = run(world, "sync", "--dry-run")
    assert result.returncode == 0
    assert "PushCreate d1" in result.stdout and "PushCreate d2" in result.stdout
    assert phone.items() == {}


def test_conflicts_are_listed_and_resolved_from_the_command_line(world: World) -> None:
    phone = world.bind(conflict="manual")
    world.save(meeting("k1", "Kick-off"))
    world.sync()
    world.save(meeting("k1", "Kick-off (CRM)"))
    phone.edit(uid("k1"), summary="Kick-off (phone)")
    world.sync()
    listed = run(world, "conflicts", "list")
    assert "activity k1" in listed.stdout and "'Kick-off (CRM)'" in listed.stdout and "'Kick-off (phone)'" in listed.stdout
    conflict_id = listed.stdout.split()[0].lstrip("#")
    resolved = run(world, "conflicts", "resolve", conflict_id, "--keep", "crm")
    assert resolved.returncode == 0, resolved.stderr
    assert run(world, "conflicts", "resolve", conflict_id, "--keep", "crm").returncode == 1
    world.sync()
    from world import master

    assert str(master(phone.get(uid("k1"))[0])["SUMMARY"]) == "Kick-off (CRM)"
    assert run(world, "conflicts", "list").stdout.strip() == "no pending conflicts"


def test_a_long_first_sync_reports_progress(world: World) -> None:
    world.bind()
    world.save(*(meeting(f"bulk{i:03d}", f"Meeting {i}", days=1 + i % 20) for i in range(60)))
    result = run(world, "sync")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "actions" in line]
    assert lines[0] == "anna: 6/60 actions" and lines[-1] == "anna: 60/60 actions"
    assert "60 created" in result.stdout


def test_sync_leaves_a_binding_alone_while_another_worker_holds_it(world: World) -> None:
    phone = world.bind()
    world.save(meeting("l1"))
    run(world, "db", "upgrade")
    from syncd.service.leases import Leases

    daemon = Leases(world.app().engine, "other-host:4242", ttl=60)
    daemon.ensure(["anna"])
    assert daemon.claim("anna")
    result = run(world, "sync")
    assert result.returncode == 1 and "anna: skipped" in result.stdout
    assert phone.items() == {}
    daemon.release(["anna"])
    assert run(world, "sync").returncode == 0
    assert list(phone.items()) == [uid("l1")]
    assert world.sql("SELECT lease_owner FROM sync_bindings") == [(None,)]  # given back after the pass


def test_sync_and_check_speak_json_and_quiet_sync_prints_no_progress(world: World) -> None:
    world.bind("anna")
    world.bind("broken", remote={"password": "wrong-password-123"})
    world.save(*(meeting(f"j{i:02d}", days=1 + i % 20) for i in range(60)))
    checked = run(world, "check", "--json", "--binding", "anna")
    assert checked.returncode == 0, checked.stderr
    doc = json.loads(checked.stdout)
    assert doc["ok"] is True and doc["bindings"] == [{"binding": "anna", "enabled": True, "ok": True, "problems": []}]
    both = json.loads(run(world, "check", "--json").stdout)
    assert [(b["binding"], b["ok"]) for b in both["bindings"]] == [("anna", True), ("broken", False)]

    synced = run(world, "sync", "--json", "--binding", "anna")
    assert synced.returncode == 0, synced.stderr
    [report] = json.loads(synced.stdout)  # the whole output is the document: no progress lines in it
    assert report["binding"] == "anna" and report["result"] == "ok" and report["item_errors"] is False
    assert report["counts"]["remote_created"] == 60 and report["errors"] == [] and report["error"] is None

    world.save(*(meeting(f"q{i:02d}", days=1 + i % 20) for i in range(60)))
    quiet = run(world, "sync", "-q", "--binding", "anna")
    assert quiet.returncode == 0 and "actions" not in quiet.stdout and "60 created" in quiet.stdout
