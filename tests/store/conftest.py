"""Store test fixtures: every test here runs on SQLite and on PostgreSQL (see tests/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg import empty_store_url, pg_store_url, pg_template, store_url  # noqa: F401  (fixtures)
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from syncd.model import CrmUser
from syncd.store import repository
from syncd.store.db import make_engine, session_factory


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:  # noqa: F811  (the fixture)
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


@pytest.fixture
def owner(session: Session) -> str:
    """An existing CRM user to own activities."""
    repository.add_user(session, CrmUser("anna@example.com", "Anna de Vries", "Europe/Amsterdam"))
    session.commit()
    return "anna@example.com"

