"""Fixtures of the crash-safety matrix: the engine tests' helpers (world.py) on the path, the
session's Radicale, and one fork server for ``syncd`` processes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "engine"))

from fork_server import ForkServer
from radicale_server import radicale  # noqa: F401  (the session's Radicale)


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    with ForkServer() as server:
        yield server
