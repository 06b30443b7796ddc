"""Alembic environment: Preuve passes an open connection in ``config.attributes["connection"]``.

:meth:`preuve.store.db.Store.upgrade` opens the connection (with the backend settings of the store and a
migration lock) and runs ``alembic upgrade`` on it. For development, ``-x url=...`` or ``sqlalchemy.url``
work too, e.g. to autogenerate a new revision against a scratch database.
"""

from __future__ import annotations

from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlmodel.sql.sqltypes import AutoString

from preuve.store.models import metadata
from preuve.store.types import UTCDateTime

config = context.config


def _render_item(type_: str, obj: object, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write storage types in new revisions, not Python-side wrappers: a revision must not change meaning
    when the application's types do."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()"  # sqlmodel's AutoString is a plain VARCHAR on SQLite and PostgreSQL
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table (copy, drop, rename) instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )


def _url() -> str | None:
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")


def run_offline() -> None:
    url = _url()
    if not url:
        raise RuntimeError("offline migrations need -x url=... to know the SQL dialect")
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        # The caller owns the connection and its transaction (commit, rollback, locks).
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = _url()
    if not url:
        raise RuntimeError("no connection: run migrations through preuve.store.db.Store.open, or pass -x url=...")
    engine = create_engine(url)
    try:
        with engine.connect() as own:
            _configure(own)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
