"""Shared test set-up: the helper modules in tests/ are importable by name, and the store fixtures
(SQLite and PostgreSQL, see tests/pg.py) are available everywhere."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os  # noqa: E402

from hypothesis import settings  # noqa: E402

# On CI the property tests draw the same examples every run, so a red build is reproducible; on a
# developer's machine they keep exploring.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

from pg import empty_store_url, pg_store_url, pg_template, store_url  # noqa: E402,F401
