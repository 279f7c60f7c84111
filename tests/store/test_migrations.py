"""The migrations build the schema from nothing, on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import syncd.store.sync_models  # noqa: F401  (its tables join Base.metadata, as in the migrations' env)
from syncd.store.db import alembic_config, current_revision, make_engine, upgrade
from syncd.store.models import Base

STORE_TABLES = {"users", "contacts", "accounts", "projects", "activities", "activity_participants",
                "activity_regarding", "activity_changes"}


def test_upgrade_from_empty(empty_store_url: str) -> None:
    assert current_revision(empty_store_url) is None

    upgrade(empty_store_url)
    upgrade(empty_store_url)  # a second run is a no-op

    engine = make_engine(empty_store_url)
    try:
        assert STORE_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert current_revision(empty_store_url) is not None


# SQLite cannot reflect the lower(email) indexes; PostgreSQL compares them.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrations_match_the_models(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_downgrade_to_empty(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert not STORE_TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_schema_head_constant_is_alembics_head() -> None:
    """syncd checks a store against SCHEMA_HEAD without importing alembic; it must be the real head."""
    from alembic.script import ScriptDirectory

    from syncd.store.db import SCHEMA_HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD
