from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from radicale_server import FaultProxy, proxy, radicale  # noqa: F401  (fixtures)
from world import World

from syncd.connectors.radicale_embedded import EmbeddedRadicale


@pytest.fixture
def world(tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy) -> Iterator[World]:  # noqa: F811
    yield World(tmp_path, radicale, proxy)


@pytest.fixture
def pg_world(tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy, pg_store_url: str) -> Iterator[World]:  # noqa: F811
    """The same world on a PostgreSQL store (the production store)."""
    yield World(tmp_path, radicale, proxy, store_url=pg_store_url)
