"""Shared test set-up: the helper modules in tests/ are importable by name, and the store fixtures
(SQLite and PostgreSQL, see tests/pg.py) are available everywhere."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pg import empty_store_url, pg_store_url, pg_template, store_url  # noqa: E402,F401
