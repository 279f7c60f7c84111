"""Leases in the store's database, on SQLite and PostgreSQL: one holder at a time, expiry hands a
binding over, a clean leave gives everything back, and the fair share follows the live workers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from syncd.service.leases import Leases, fair_share
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
