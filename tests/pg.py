"""Store fixtures that run a test against SQLite and against PostgreSQL.

PostgreSQL comes from ``SYNCD_TEST_PG_URL`` (``postgresql+psycopg://syncd:syncd@127.0.0.1:5432/syncd_test``),
a role allowed to CREATE DATABASE. Each test gets a database of its own, copied from a template that
is migrated once per session (copying is much faster than migrating). Without the variable the
PostgreSQL cases are skipped, unless ``CI=true``: then they fail, so CI cannot pass without them.

tests/conftest.py re-exports the fixtures: ``from pg import empty_store_url, pg_store_url, pg_template, store_url``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from syncd.store.db import upgrade

PG_URL_ENV = "SYNCD_TEST_PG_URL"

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def pg_admin_url() -> str:
    """The PostgreSQL URL to test against; skips (or, on CI, fails) when there is none."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    message = f"PostgreSQL tests need {PG_URL_ENV}, e.g. postgresql+psycopg://syncd:syncd@127.0.0.1:5432/syncd_test"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: these tests must run)")
    pytest.skip(message)


@contextmanager
def fresh_pg_database(admin_url: str, template: str | None = None) -> Iterator[str]:
    """A new, uniquely named database (a copy of ``template`` if given), dropped afterwards."""
    name = f"syncd_t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            _drop(admin, name)
    finally:
        admin.dispose()


def _drop(admin: Engine, name: str) -> None:
    """Drop a test database. FORCE ends the test's leftover connections, but a role that is not a
    superuser may not end an autovacuum worker; a plain DROP then makes autovacuum give way by itself.
    A database left behind costs nothing on a throw-away cluster, a failed teardown would fail a
    passing test."""
    for attempt in range(20):
        force = " WITH (FORCE)" if attempt % 2 == 0 else ""
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"{force}'))
            return
        except sqlalchemy.exc.DBAPIError:
            time.sleep(0.25 * (attempt + 1))


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Name of a database migrated to head, to copy for each test."""
    admin_url = pg_admin_url()
    with fresh_pg_database(admin_url) as url:
        upgrade(url)
        yield make_url(url).database or ""


def _sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'store.db'}"


@pytest.fixture(params=BACKENDS)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables): SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path)
        return
    with fresh_pg_database(pg_admin_url()) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store migrated to head: SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = _sqlite_url(tmp_path)
        upgrade(url)
        yield url
        return
    admin_url = pg_admin_url()
    template = request.getfixturevalue("pg_template")
    with fresh_pg_database(admin_url, template=template) as url:
        yield url


@pytest.fixture
def pg_store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated PostgreSQL store only, for behaviour SQLite cannot show (concurrent writers)."""
    admin_url = pg_admin_url()
    template = request.getfixturevalue("pg_template")
    with fresh_pg_database(admin_url, template=template) as url:
        yield url
