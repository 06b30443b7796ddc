"""Column types shared by the results store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.types import DateTime, Interval, TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """An instant in time: aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike.

    PostgreSQL stores ``timestamptz`` and returns it in the session's time zone; SQLite has no time zone
    support and would silently drop the offset. Storing UTC everywhere keeps SQLite's text values
    comparable (lexical order is time order) and keeps results independent of the server's TZ setting.
    Naive datetimes are refused rather than guessed: a local time mistaken for UTC shifts a drill's
    attested time by hours without anyone noticing.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def coerce_compared_value(self, op: OperatorType | None, value: Any) -> TypeEngine[Any]:
        # `column - timedelta(...)` is interval arithmetic, not a datetime to convert.
        if isinstance(value, timedelta):
            return Interval()
        return self

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware datetime (UTC)")
        utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite's DATETIME is text without offset; the value is UTC by construction.
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers always return datetime here
            raise TypeError(f"the database returned {type(value).__name__} for a datetime column")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime
