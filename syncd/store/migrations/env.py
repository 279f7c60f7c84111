"""Alembic environment of the store; run through :func:`syncd.store.db.upgrade`, which passes the connection."""

from __future__ import annotations

from alembic import context

from syncd.store import models, sync_models  # noqa: F401  (every table joins Base.metadata)

config = context.config
target_metadata = models.Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the store migrations through syncd.store.db.upgrade(url)")
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
