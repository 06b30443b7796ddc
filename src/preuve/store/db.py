"""Opening the results store: engine settings per backend, then the schema migrations.

SQLite serves a single server (the default); PostgreSQL serves larger installations. Both get the same schema
through the same Alembic migrations, run on every open so that an upgraded Preuve never reads an old schema.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, make_url, text
from sqlalchemy.engine import URL, Connection, Engine, create_engine
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from preuve import redact
from preuve.errors import FailureClass, PreuveError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_S = 30.0  # writers queue behind each other; a drill's final write must not fail on a lock
POSTGRES_CONNECT_TIMEOUT_S = 10  # an unreachable server should fail the command, not hang it
# pg_advisory_xact_lock key: concurrent `Store.open` calls (scheduler, CLI, web) migrate one at a time.
_MIGRATION_LOCK_KEY = 0x70726575  # "preu"
# Execution option that makes a SQLite transaction take the write lock at BEGIN (see _sqlite_engine).
_WRITE_OPTION = "preuve_write"


class Store:
    """The results database. Use :meth:`open`; close it when done (or use it as a context manager)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        self._url = url

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect to ``url`` and bring its schema to the newest revision.

        Raises :class:`PreuveError` (``internal``) naming the database (password hidden) and what to check.
        """
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:
            raise PreuveError(
                FailureClass.INTERNAL,
                "the `database` setting is not a database URL; write it like sqlite:///preuve.db or "
                f"postgresql+psycopg://user@host/preuve ({type(exc).__name__})",
            ) from None
        shown = display_url(parsed)
        engine: Engine | None = None
        try:
            engine = _create_engine(parsed)
            store = cls(engine, shown)
            if migrate:
                store.upgrade()
            else:
                with engine.connect():
                    pass
            return store
        except Exception as exc:
            if not isinstance(exc, SQLAlchemyError | OSError | ImportError) and not _is_alembic_error(exc):
                raise
            if engine is not None:
                engine.dispose()
            raise PreuveError(FailureClass.INTERNAL, _open_failure(parsed, shown, exc)) from None

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with its password hidden, safe for messages and logs."""
        return self._url

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on an exception.

        ``write=True`` takes SQLite's write lock at the start of the transaction, so a read-then-write
        cannot fail halfway with "database is locked" when another process wrote in between; PostgreSQL
        ignores it. Objects stay readable after the block (no expiry on commit).
        """
        engine = self._write_engine if write else self._engine
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def connection(self, *, write: bool = False) -> Iterator[Connection]:
        """A Core connection in one transaction, for single statements whose row count matters."""
        engine = self._write_engine if write else self._engine
        with engine.begin() as connection:
            yield connection

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` in one transaction (nothing to do: no DDL, no log)."""
        with self.connection(write=True) as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            if revision == "head" and _stamped(connection) == {shipped_head()}:
                # The usual case, answered without importing Alembic (a tenth of a second of every command).
                return
            from alembic import command
            from alembic.runtime.migration import MigrationContext
            from alembic.script import ScriptDirectory

            config = alembic_config(connection)
            if revision == "head":
                # Checked under the lock: the usual case on every open is a database that is already current.
                current = set(MigrationContext.configure(connection).get_current_heads())
                if current == set(ScriptDirectory.from_config(config).get_heads()):
                    return
            command.upgrade(config, revision)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self._url!r})"


def display_url(url: URL) -> str:
    """The URL for messages and logs: passwords hidden, in the user:password part and in the query string."""
    if url.get_backend_name() == "sqlite":
        # No credentials in a SQLite URL; SQLAlchemy would escape the ':' of ':memory:' and Windows drives.
        return f"{url.drivername}:///{url.database or ''}" + (f"?{_query(url)}" if url.query else "")
    hidden = {key: (_HIDDEN if key.lower() in _SECRET_QUERY_KEYS else value) for key, value in url.query.items()}
    return url.set(query=hidden).render_as_string(hide_password=True).replace(_HIDDEN_ESCAPED, redact.MASK)


_HIDDEN = redact.MASK
_HIDDEN_ESCAPED = "%2A%2A%2A"
_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})


def _query(url: URL) -> str:
    return "&".join(
        f"{key}={item}" for key, value in url.query.items() for item in ((value,) if isinstance(value, str) else value)
    )


_VERSION_TABLE = "alembic_version"
# The header every revision file carries (script.py.mako); a file written otherwise sends the check to Alembic.
_REVISION_LINE = re.compile(r"^revision(?:: *str)? *= *[\"']([\w.-]+)[\"'] *$", re.MULTILINE)
_DOWN_LINE = re.compile(r"^down_revision(?:: *[\w |]+)? *= *(?:None|[\"']([\w.-]+)[\"']) *$", re.MULTILINE)
_NO_BRANCH_LINES = re.compile(r"^(?:branch_labels|depends_on)(?:: *[\w |\[\]]+)? *= *None *$", re.MULTILINE)


@functools.cache
def shipped_head() -> str | None:
    """The newest schema revision this Preuve ships, read from the revision files without importing Alembic.

    None unless the files form one plain chain (one revision each, no branches, no dependencies, one head):
    then Alembic itself decides. Only used to skip Alembic when the database is already at that revision.
    """
    parents: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except OSError:
            return None
        revisions, downs = _REVISION_LINE.findall(source), _DOWN_LINE.findall(source)
        if len(revisions) != 1 or len(downs) != 1 or len(_NO_BRANCH_LINES.findall(source)) != 2:
            return None
        if revisions[0] in parents:
            return None
        parents[revisions[0]] = downs[0] or None
    heads = set(parents) - {parent for parent in parents.values() if parent}
    roots = [rev for rev, parent in parents.items() if parent is None]
    if len(heads) != 1 or len(roots) != 1 or any(p is not None and p not in parents for p in parents.values()):
        return None
    return heads.pop()


def _stamped(connection: Connection) -> set[str] | None:
    """The revisions the database is stamped with (plain SQL), or None when it has no version table yet."""
    if not inspect(connection).has_table(_VERSION_TABLE):
        return None
    return {str(row[0]) for row in connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}"))}  # noqa: S608


def _is_alembic_error(exc: BaseException) -> bool:
    """An Alembic CommandError (a database newer than this Preuve...), without importing Alembic to ask."""
    module = sys.modules.get("alembic.util.exc")
    return module is not None and isinstance(exc, module.CommandError)


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """An Alembic configuration built in code: the migrations ship inside the package, no alembic.ini."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    # ConfigParser interpolation would read '%' in the path as a placeholder.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _create_engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if url.drivername == "postgresql":
            # psycopg 3 is the driver Preuve installs; SQLAlchemy 2.0 picks psycopg2 for a bare URL.
            url = url.set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {"application_name": "preuve"}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    raise ArgumentError(f"unsupported database {backend!r}: use sqlite or postgresql")


def _sqlite_engine(url: URL) -> Engine:
    # The pool hands a connection to one thread at a time, so the sqlite3 same-thread check is not needed.
    options: dict[str, Any] = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    }
    if url.database in (None, "", ":memory:"):
        # One in-memory database per connection otherwise: every thread would see its own, empty one.
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Python's sqlite3 starts transactions implicitly and only before writes; SQLAlchemy emits BEGIN
        # itself instead (see _on_begin), so that reads are inside the transaction too.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite, per connection
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            _use_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads then writes fails at once with SQLITE_BUSY if another writer
        # committed meanwhile (busy_timeout does not apply); IMMEDIATE waits for the lock up front instead.
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _use_wal(cursor: Any) -> None:
    """WAL: readers (web, CLI) never block the writer (a drill finishing), nor the reverse.

    The mode is stored in the database file, so only its first connection switches it. The switch needs
    the database to itself and SQLite reports "locked" at once instead of waiting (busy_timeout does not
    apply), which happens when several processes open a new database together: retry until the deadline.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() in ("wal", "memory"):
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _open_failure(url: URL, shown: str, exc: BaseException) -> str:
    reason = _reason(exc)
    if url.password:
        reason = reason.replace(str(url.password), redact.MASK)
    reason = redact.mask(reason)
    if _is_alembic_error(exc):
        check = (
            "the database was probably upgraded by a newer version of Preuve: upgrade Preuve on this server, "
            "or point `database` in preuve.toml at this server's own database"
        )
    elif url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:":
            folder = Path(database).parent
            check = (
                f"check that the folder {folder} exists, that this user can write to it and to {database}, "
                "and that the disk is not full"
            )
        else:
            check = "check the `database` setting in preuve.toml"
    elif url.get_backend_name() == "postgresql":
        check = (
            "check that PostgreSQL is running and reachable at "
            f"{url.host or 'localhost'}:{url.port or 5432}, and the user, password and database name "
            "in the `database` setting of preuve.toml"
        )
    else:
        check = "use a sqlite:/// or postgresql+psycopg:// URL in the `database` setting of preuve.toml"
    stop = "" if reason.endswith(("?", "!")) else "."
    return f"cannot open the results database {shown}: {reason}{stop} {check[0].upper()}{check[1:]}."


def _reason(exc: BaseException) -> str:
    """The driver's own words, first line only: enough to act on, without SQLAlchemy's statement dump."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    text_ = "; ".join(lines[:2]) if lines else type(original).__name__
    return text_.rstrip(".")
