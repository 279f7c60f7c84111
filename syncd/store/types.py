"""Column types that make SQLite and PostgreSQL hand back the same Python values."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class _Jsonb(TypeDecorator[Any]):
    """PostgreSQL's JSONB, its dialect module imported when a PostgreSQL engine first uses the type:
    importing it with the models cost every command on a SQLite store about 0.1 s."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        from sqlalchemy.dialects.postgresql import JSONB

        return dialect.type_descriptor(JSONB())


#: JSON everywhere, JSONB on PostgreSQL: JSONB has an equality operator, which the change-tracking
#: trigger needs to tell a real update from a no-op one (``OLD.* IS DISTINCT FROM NEW.*``). The base
#: type stays JSON, so what the ORM and expressions see of the column (None written as JSON null,
#: the JSON operators) is as before on both databases.
JsonValue = JSON().with_variant(_Jsonb(), "postgresql")

#: How UTC instants are written to SQLite: fixed width, so text order is time order. The year is
#: padded by hand (see :func:`sqlite_text`): glibc's ``%Y`` writes year 1 as ``1``, not ``0001``.
SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
#: A year of fewer than four digits, as earlier versions wrote years before 1000.
_SHORT_YEAR = re.compile(r"^(\d{1,3})-")


def sqlite_text(utc: datetime) -> str:
    """``utc`` in :data:`SQLITE_FORMAT`, four-digit year included for years 1 to 999."""
    # isoformat pads the year as SQLITE_FORMAT wants, at half strftime's cost; [:26] drops the offset.
    return utc.isoformat(" ", "microseconds")[:26]


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant, always returned as an aware ``datetime`` in UTC.

    PostgreSQL keeps it as ``timestamptz``. SQLite has no time type, and SQLAlchemy's own SQLite
    ``DateTime`` returns naive values, so here it is text in UTC (``SQLITE_FORMAT``); anything
    ``datetime.fromisoformat`` reads is accepted back, because the store's triggers and a CRM's
    plain SQL write shorter forms (``2026-05-01 09:00:00.123``, ``...T09:00:00Z``).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; give it a timezone")
        utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return sqlite_text(utc)
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(_SHORT_YEAR.sub(lambda m: m.group(1).zfill(4) + "-", value))
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
