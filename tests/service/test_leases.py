"""Leases in the store's database, on SQLite and PostgreSQL: one holder at a time, expiry hands a
binding over, a clean leave gives everything back, the fair share follows the live workers, and a
holder killed on this host holds nothing (real processes, SIGKILLed)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import SYNCD, SyncdProcess, wait_for, write_config
from radicale_server import FaultProxy
from sqlalchemy import Engine, text
from world import World, meeting, uid

from syncd.connectors.radicale_embedded import EmbeddedRadicale
from syncd.service.leases import Leases, fair_share, holder_gone, worker_id
from syncd.store.db import make_engine

NAMES = ["a", "b", "c", "d", "e"]


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


def test_a_binding_has_one_holder_until_its_lease_expires(engine: Engine) -> None:
    """While A renews, B cannot take A's bindings; once A stops renewing for a TTL, B can, and A's
    next renewal no longer lists them."""
    a, b = Leases(engine, "A", ttl=0.5), Leases(engine, "B", ttl=0.5)
    a.ensure(NAMES)
    b.ensure(NAMES)  # a second worker creating the same rows is harmless
    taken = a.acquire(NAMES, limit=3)
    mine = a.renew()
    assert len(taken) == 3 and set(taken) == mine
    assert not any(b.claim(name) for name in mine)
    assert sorted(b.acquire(NAMES, limit=5)) == sorted(set(NAMES) - mine)
    time.sleep(0.6)
    assert all(b.claim(name) for name in mine)
    assert a.renew() == set()
    assert b.renew() == set(NAMES)


def test_leave_gives_every_lease_back_and_leaves_the_worker_list(engine: Engine) -> None:
    a, b = Leases(engine, "A", ttl=30), Leases(engine, "B", ttl=30)
    a.ensure(NAMES)
    assert (a.heartbeat(), b.heartbeat()) == (1, 2)
    a.acquire(NAMES, limit=5)
    assert b.acquire(NAMES, limit=5) == []
    a.leave()
    assert b.heartbeat() == 1
    assert sorted(b.acquire(NAMES, limit=5)) == NAMES


def test_binding_info_carries_what_a_new_holder_resumes_from(engine: Engine) -> None:
    a = Leases(engine, "A", ttl=30)
    a.ensure(["a"])
    info = a.info("a")
    assert (info.name, info.last_pass_at, info.failures) == ("a", None, 0)


@pytest.mark.parametrize(("bindings", "workers", "share"), [(50, 3, 17), (50, 1, 50), (3, 5, 1), (0, 2, 0), (10, 0, 10)])
def test_fair_share(bindings: int, workers: int, share: int) -> None:
    assert fair_share(bindings, workers) == share


# -- a holder that is gone from this host ------------------------------------------------------------

#: The default lease TTL: what a second `syncd sync` would wait for before the takeover existed.
TTL = 90.0

#: Whether a holder is gone is read from /proc; elsewhere the TTL rule is all there is.
linux_only = pytest.mark.skipif(not Path("/proc/self/ns/pid").exists(), reason="needs Linux /proc")

#: A worker in a process of its own: it takes every binding, says so, and waits to be killed.
HOLDER = """
import sys, time
from syncd.service.leases import Leases, worker_id
from syncd.store.db import make_engine
leases = Leases(make_engine(sys.argv[1]), worker_id(), ttl=float(sys.argv[2]))
leases.heartbeat()
leases.ensure(sys.argv[3:])
print(" ".join(leases.acquire(sys.argv[3:], limit=len(sys.argv) - 3)), flush=True)
time.sleep(600)
"""


def lease_owner(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT lease_owner FROM sync_bindings WHERE name = :n"), {"n": name}).scalar()


def sync(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SYNCD, "--config", str(config), "sync"], check=False, capture_output=True, text=True, timeout=120)


@linux_only
def test_a_worker_takes_over_at_once_from_a_killed_worker_on_this_host(engine: Engine) -> None:
    """What `syncd run` does on each heartbeat: while the other worker lives it counts and blocks;
    once SIGKILLed, its leases are free and it no longer counts, long before the TTL."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(engine.url.render_as_string(hide_password=False)),
                               str(TTL), *NAMES], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and sorted(holder.stdout.readline().split()) == NAMES
        me = Leases(engine, worker_id(), ttl=TTL)
        assert me.heartbeat() == 2
        assert me.acquire(NAMES, limit=5) == [] and not me.claim("a")
        holder.kill()
        holder.wait(10)
        started = time.monotonic()
        assert me.heartbeat() == 1
        assert me.claim("a") and sorted(["a", *me.acquire(NAMES, limit=5)]) == NAMES
        assert time.monotonic() - started < 5
        assert me.renew() == set(NAMES)
    finally:
        holder.kill()
        holder.wait(10)


@linux_only
def test_a_killed_syncd_sync_does_not_lock_the_binding(
    store_url: str, tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy
) -> None:
    """A `syncd sync` stuck in its pass blocks a second one; SIGKILLed, it blocks nothing: the next
    `syncd sync` runs the pass at once instead of answering 'skipped' for the lease TTL (90 s)."""
    world = World(tmp_path, radicale, proxy, store_url=store_url)
    phone = world.bind(remote={"timeout": 60})
    world.save(meeting("k1"))
    config = world.config_file()
    engine = make_engine(store_url)
    proxy.mode, proxy.hang_seconds = "hang", 60.0
    stuck = subprocess.Popen([*SYNCD, "--config", str(config), "sync"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_for("the first sync to hold the lease and wait on the calendar",
                 lambda: (lease_owner(engine, "anna") or "").endswith(f":{stuck.pid}") and proxy.count() > 0, 30)
        blocked = sync(config)
        assert blocked.returncode == 1 and "anna: skipped: a running syncd worker" in blocked.stdout
        stuck.kill()
        stuck.wait(10)
        proxy.mode = "pass"
        started = time.monotonic()
        after = sync(config)
        took = time.monotonic() - started
        assert after.returncode == 0 and "anna: ok: to calendar 1 created" in after.stdout, after.stdout + after.stderr
        assert took < TTL / 3, took
        assert list(phone.items()) == [uid("k1")]
        assert lease_owner(engine, "anna") is None
    finally:
        stuck.kill()
        stuck.wait(10)
        engine.dispose()


@linux_only
def test_a_killed_syncd_run_does_not_lock_its_bindings(
    store_url: str, tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy
) -> None:
    """The daemon's leases too: while `syncd run` lives, `syncd sync` leaves its binding alone; after
    a SIGKILL, `syncd sync` runs the pass at once."""
    world = World(tmp_path, radicale, proxy, store_url=store_url)
    phone = world.bind()
    world.save(meeting("r1"))
    engine = make_engine(store_url)
    daemon = {"interval": 3600.0, "jitter": 0.0, "lease_ttl": TTL, "listen": ""}
    run = SyncdProcess(write_config(tmp_path / "run.toml", store_url, world.bindings, **daemon), tmp_path / "run.log")
    config = world.config_file()
    try:
        wait_for("syncd run to hold the lease",
                 lambda: (lease_owner(engine, "anna") or "").endswith(run.worker_suffix), 30)
        blocked = sync(config)
        assert blocked.returncode == 1 and "anna: skipped" in blocked.stdout
        run.kill()
        started = time.monotonic()
        after = sync(config)
        assert after.returncode == 0 and "anna: ok" in after.stdout, after.stdout + after.stderr
        assert time.monotonic() - started < TTL / 3
        assert uid("r1") in phone.items()
    finally:
        run.kill()
        engine.dispose()


@linux_only
def test_only_a_holder_certainly_gone_from_this_host_is_taken_over(tmp_path: Path) -> None:
    """A pid that now belongs to another process (pid reuse) is gone; anything in doubt is not: a
    live process, an id of another host or namespace, an id an older version wrote (host:pid)."""
    me = worker_id()
    host, _, rest = me.rpartition("/")
    key, start_pid = rest.split(".", 1)
    start, pid = start_pid.split(":")
    assert host == socket.gethostname() and pid.isdigit() and int(pid) > 0
    assert not holder_gone(me)
    assert holder_gone(f"{host}/{key}.{int(start) + 1}:{pid}")  # this pid, another process's start time
    other_key = "0" * 8 if key != "0" * 8 else "1" * 8
    assert not holder_gone(f"{host}/{other_key}.{start}:{pid}")
    assert not holder_gone(f"other-{host}/{key}.{start}:{pid}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    assert holder_gone(f"{host}/{key}.{start}:{dead.pid}")
    assert not holder_gone(f"{host}:{dead.pid}")  # the old form: the TTL rule
    assert not holder_gone(f"other-{host}/{key}.{start}:{dead.pid}")
