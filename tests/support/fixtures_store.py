"""Fixtures for the results store: a PostgreSQL server for the session, a fresh database per test.

``store_url`` runs each test twice, on SQLite and on PostgreSQL; the PostgreSQL run carries the ``postgres``
marker, so ``-m "not postgres"`` keeps only the SQLite run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from preuve.store.db import Store
from tests.support.postgres import BINARY_GLOB, PostgresServer, find_postgres, start_postgres

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    binary = find_postgres()
    if binary is None:
        pytest.skip(f"PostgreSQL is not installed here (no {BINARY_GLOB}); CI installs it")
    server = start_postgres(binary)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database (not yet migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'preuve.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(str(make_url(url).database))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
