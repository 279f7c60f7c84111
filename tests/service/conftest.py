"""Fixtures for the service tests: the engine tests' world (a store, a real Radicale behind a
proxy), and ``syncd run`` as a real subprocess."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "engine"))

from radicale_server import FaultProxy, proxy, radicale  # noqa: F401  (fixtures)
from world import World

from syncd.connectors.radicale_embedded import EmbeddedRadicale


@pytest.fixture
def world(tmp_path: Path, radicale: EmbeddedRadicale, proxy: FaultProxy) -> Iterator[World]:  # noqa: F811
    yield World(tmp_path, radicale, proxy)
