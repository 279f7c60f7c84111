"""A large pull parses its items in worker processes (``syncd.connectors.parse_pool``), through the whole
engine against Radicale: the CRM gets what an in-process parse gives it, a bad item is refused alone,
and the pass after the pull finds nothing to do (what came back from the workers fingerprints as the
calendar's items do)."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from phone_files import calendar_folder, phone_event
from world import OWNER, World, soon

from syncd.connectors import parse_pool
from syncd.engine import runner
from syncd.mapping.fingerprint import fingerprints
from syncd.model import Activity, Kind, Participant, ParticipantKind

N = 30
BAD = 7


def test_a_pull_parsed_in_workers_reaches_the_crm_whole(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "PAGE_SIZE", 10)
    monkeypatch.setattr(parse_pool, "MIN_ITEMS", 5)
    start = soon(1, 9).astimezone(UTC)
    # Jan is a CRM contact: the workers classify him from the CRM's people sent with the context.
    world.save(Activity(
        id="ACT-jan", kind=Kind.APPOINTMENT, subject="Intake", owner=OWNER, start=start - timedelta(days=3),
        end=start - timedelta(days=3, hours=-1), timezone="UTC",
        participants=(Participant(ParticipantKind.CONTACT, "jan@klant.nl", "Jan"),),
    ))
    phone = world.bind(past_days=30, future_days=365)
    folder = calendar_folder(world, phone)
    for i in range(N):
        lines = ["ATTENDEE;CN=Jan:mailto:jan@klant.nl"] if i % 3 == 0 else []
        body = phone_event(f"e{i:02d}", f"Visit #{i}", start + timedelta(days=i), *lines)
        if i == BAD:
            # EXRULE (removed by RFC 5545), which no target syncd writes to can express: refused.
            body = body.replace(b"DURATION:PT1H", b"DURATION:PT1H\r\nRRULE:FREQ=DAILY\r\nEXRULE:FREQ=WEEKLY")
        (folder / f"e{i:02d}.ics").write_bytes(body)

    pulled = world.sync()
    assert pulled.result == "ok", pulled.error
    assert pulled.counts["crm_created"] == N - 1
    assert len(pulled.errors) == 1 and "e07" in pulled.errors[0] and "EXRULE" in pulled.errors[0], pulled.errors
    by_subject = {a.subject: a for a in world.all()}
    assert set(by_subject) == {f"Visit #{i}" for i in range(N) if i != BAD} | {"Intake"}
    for i in range(0, N, 3):
        if i != BAD:
            (jan,) = [p for p in by_subject[f"Visit #{i}"].participants if p.email == "jan@klant.nl"]
            assert jan.kind == ParticipantKind.CONTACT
    assert by_subject["Visit #4"].start == start + timedelta(days=4)
    assert by_subject["Visit #4"].end == start + timedelta(days=4, hours=1)

    # The workers fingerprinted what they read: the links hold what this process computes of the CRM's rows.
    compared = runner.policy_for(world.config().binding("anna")).compared
    links = world.sql("SELECT activity_id, crm_fp, remote_fp FROM sync_links")
    assert len(links) == N  # Intake, pushed, besides
    assert all((crm_fp, remote_fp) == fingerprints(world.get(key), compared) for key, crm_fp, remote_fp in links)

    again = world.sync()
    assert again.result == "ok", again.error
    assert {k: v for k, v in again.counts.items() if v and k != "errors"} == {}, again.counts
