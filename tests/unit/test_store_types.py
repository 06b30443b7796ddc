"""UTCDateTime and the repository display string, without any database server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, make_url, select
from sqlalchemy.engine import Dialect

from preuve.config.model import Target as TargetSpec
from preuve.store.types import UTCDateTime
from preuve.targets.display import repository_display

PARIS_SUMMER = timezone(timedelta(hours=2))
POSTGRES: Dialect = make_url("postgresql+psycopg://").get_dialect()()
SQLITE: Dialect = make_url("sqlite://").get_dialect()()


def test_bind_converts_to_utc_and_strips_offset_only_on_sqlite() -> None:
    value = datetime(2024, 7, 1, 14, 30, 5, 123456, tzinfo=PARIS_SUMMER)
    column_type = UTCDateTime()
    on_postgres = column_type.process_bind_param(value, POSTGRES)
    on_sqlite = column_type.process_bind_param(value, SQLITE)
    assert on_postgres == datetime(2024, 7, 1, 12, 30, 5, 123456, tzinfo=UTC)
    assert on_postgres is not None and on_postgres.tzinfo is UTC
    assert on_sqlite == datetime(2024, 7, 1, 12, 30, 5, 123456)  # noqa: DTZ001 - naive, UTC by construction


@pytest.mark.parametrize("dialect", [POSTGRES, SQLITE], ids=["postgresql", "sqlite"])
def test_naive_datetimes_are_refused(dialect: Any) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        UTCDateTime().process_bind_param(datetime(2024, 7, 1, 12, 0), dialect)  # noqa: DTZ001


def test_none_passes_through() -> None:
    assert UTCDateTime().process_bind_param(None, SQLITE) is None
    assert UTCDateTime().process_result_value(None, SQLITE) is None


def test_results_are_aware_utc() -> None:
    column_type = UTCDateTime()
    naive = column_type.process_result_value(datetime(2024, 1, 2, 3, 4, 5), SQLITE)  # noqa: DTZ001
    assert naive == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    shifted = column_type.process_result_value(datetime(2024, 1, 2, 5, 4, 5, tzinfo=PARIS_SUMMER), POSTGRES)
    assert shifted is not None and shifted.tzinfo is UTC
    assert shifted == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_sqlite_round_trip_keeps_the_instant_and_orders_as_time(tmp_path: Path) -> None:
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}")
    metadata.create_all(engine)
    # Same UTC order as listed; the offsets differ so that text order of the inputs would be wrong.
    values = [
        datetime(2024, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))),  # 2024-03-02 04:30 UTC
        datetime(2024, 3, 2, 6, 0, tzinfo=PARIS_SUMMER),  # 2024-03-02 04:00 UTC
        datetime(2024, 3, 2, 4, 15, tzinfo=UTC),
    ]
    with engine.begin() as connection:
        connection.execute(insert(table), [{"id": i, "at": v} for i, v in enumerate(values)])
        rows = connection.execute(select(table.c.id, table.c.at).order_by(table.c.at)).all()
        later = connection.execute(
            select(table.c.id).where(table.c.at > datetime(2024, 3, 2, 4, 10, tzinfo=UTC))
        ).scalars()
        assert sorted(later) == [0, 2]
    engine.dispose()
    assert [row.id for row in rows] == [1, 2, 0]
    for row in rows:
        assert row.at.tzinfo is UTC
        assert row.at == values[row.id]


def test_naive_value_refused_through_a_statement(tmp_path: Path) -> None:
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}")
    metadata.create_all(engine)
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as connection:
        connection.execute(insert(table), {"id": 1, "at": datetime(2024, 1, 1)})  # noqa: DTZ001
    engine.dispose()


def test_storage_type_is_timestamptz_on_postgresql() -> None:
    compiled = UTCDateTime().dialect_impl(POSTGRES)
    assert compiled.compile(dialect=POSTGRES) == "TIMESTAMP WITH TIME ZONE"


# ------------------------------------------------------------------------------------- repository display

_SPEC: TypeAdapter[Any] = TypeAdapter(TargetSpec)
_COMMON = {"password_file": "secrets/p", "location": "offsite", "media": "nas"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"kind": "local", "path": "/mnt/usb/restic"}, "local:/mnt/usb/restic"),
        (
            {
                "kind": "sftp",
                "host": "nas.acme.lan",
                "user": "backup",
                "identity_file": "keys/id",
                "known_hosts": "keys/kh",
                "path": "/volume1/restic/acme",
            },
            "sftp:nas.acme.lan:/volume1/restic/acme",
        ),
        (
            {
                "kind": "sftp",
                "host": "nas.acme.lan",
                "port": 2222,
                "user": "backup",
                "identity_file": "keys/id",
                "known_hosts": "keys/kh",
                "path": "/volume1/restic/acme",
            },
            "sftp://nas.acme.lan:2222//volume1/restic/acme",
        ),
        (
            {
                "kind": "s3",
                "endpoint": "https://s3.example.net",
                "bucket": "bucket",
                "prefix": "/prefix/",
                "env_file": "e",
            },
            "s3:https://s3.example.net/bucket/prefix",
        ),
        (
            {"kind": "s3", "endpoint": "https://s3.example.net/", "bucket": "bucket", "env_file": "e"},
            "s3:https://s3.example.net/bucket",
        ),
        ({"kind": "rest", "url": "https://host:8000/acme/"}, "rest:https://host:8000/acme/"),
        ({"kind": "rest", "url": "https://host:8000/acme/?token=s3cret#x"}, "rest:https://host:8000/acme/"),
    ],
)
def test_repository_display(spec: dict[str, Any], expected: str) -> None:
    assert repository_display(_SPEC.validate_python({**_COMMON, **spec})) == expected


def test_repository_display_drops_credentials_even_if_validation_is_bypassed() -> None:
    spec = _SPEC.validate_python({**_COMMON, "kind": "rest", "url": "https://host:8000/acme/"})
    # model_construct-like copy skips the validator that forbids user:password in the URL.
    sneaky = spec.model_copy(update={"url": "https://alice:hunter2@host:8000/acme/"})
    shown = repository_display(sneaky)
    assert shown == "rest:https://host:8000/acme/"
    assert "hunter2" not in shown and "alice" not in shown
