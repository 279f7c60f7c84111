"""How many passes one worker runs at once, and that the store lets them all in."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import text

from syncd.app import App
from syncd.config import parse


def _config(tmp_path: Path, **daemon: int) -> dict:
    return {"store": {"url": f"sqlite:///{tmp_path / 'crm.sqlite3'}"}, "daemon": daemon}


def test_concurrency_defaults_to_the_cpu_count_and_can_be_set(tmp_path: Path) -> None:
    assert parse(_config(tmp_path)).daemon.passes_at_once == min(32, 4 * (os.cpu_count() or 1))
    assert parse(_config(tmp_path, concurrency=12)).daemon.passes_at_once == 12


def test_every_concurrent_pass_gets_a_store_connection_without_waiting(tmp_path: Path) -> None:
    """SQLAlchemy's default pool (5 + 10 overflow) would make passes 16 and up wait, then fail after
    30 s with 'QueuePool limit reached'; the pool follows the setting instead."""
    app = App(parse(_config(tmp_path, concurrency=20)))
    held = threading.Barrier(22, timeout=10)
    failures: list[BaseException] = []

    def hold_a_connection() -> None:
        try:
            with app.engine.connect() as connection:
                connection.execute(text("select 1"))
                held.wait()  # every thread holds its connection at the same moment
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=hold_a_connection) for _ in range(22)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    app.engine.dispose()
    assert failures == []
