"""Leases held in the results database: one restic operation per repository, one scheduler per database.

A lease is a row: whoever inserted it (or took it over once it expired) holds it until ``lease_until``, and keeps
it by renewing it (a heartbeat every third of the lease). A holder that dies (kill -9, power loss) stops renewing,
so its lease expires by itself and the next one can take it; nobody has to clean up after a crash. Both the
daemon and a technician's `preuve drill run` go through here, on any number of servers sharing the database.

Acquiring is a single INSERT, or a single UPDATE ... WHERE lease_until < now: the condition is in the statement,
so two candidates cannot both win (PostgreSQL re-checks it after waiting for the row lock; SQLite serialises
writers). A holder string is "pid@host/nonce": the nonce tells apart two holders of one process (a drill and a
probe of the same daemon), "pid@host" is the drill's ``worker`` (crash recovery matches them).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from preuve.config.loader import Config, TargetRef
from preuve.config.model import LocalTarget, RestTarget, S3Target, SftpTarget, resolve
from preuve.config.units import format_duration, parse_duration
from preuve.errors import FailureClass, PreuveError
from preuve.store.db import Store
from preuve.store.models import metadata
from preuve.store.records import worker_id
from preuve.targets.display import repository_display

log = logging.getLogger("preuve.scheduler")

_LOCK: Table = metadata.tables["repolock"]
_LEASE: Table = metadata.tables["schedulerlease"]
SCHEDULER_LEASE = "scheduler"


def _now() -> datetime:
    return datetime.now(UTC)


def new_holder() -> str:
    """A holder id for one acquisition: "pid@host/nonce"."""
    return f"{worker_id()}/{secrets.token_hex(4)}"


def holder_worker(holder: str) -> str:
    """The "pid@host" part of a holder id."""
    return holder.split("/", 1)[0]


# ------------------------------------------------------------------------------------------ what a lock guards


def repo_key(config: Config, target: TargetRef) -> str:
    """The repository's identity: two targets naming the same repository share one lock.

    The display form (no credentials), except for local repositories, whose path is resolved: "repo" relative
    to the configuration folder and "/srv/cfg/repo" are one repository.
    """
    spec = target.spec
    if isinstance(spec, LocalTarget):
        return f"local:{os.path.realpath(resolve(config.directory, spec.path))}"
    return repository_display(spec)


def storage_host(config: Config, target: TargetRef) -> str:
    """What a drill loads: the NAS, the S3 endpoint or REST server host, or for a local repository its mount."""
    spec = target.spec
    if isinstance(spec, SftpTarget):
        return spec.host.lower()
    if isinstance(spec, S3Target | RestTarget):
        url = spec.endpoint if isinstance(spec, S3Target) else spec.url
        return (urlsplit(url).hostname or url).lower()
    return f"mount:{mount_point(resolve(config.directory, spec.path))}"


def mount_point(path: Path) -> str:
    """The mount point holding ``path`` (or, for a path not created yet, its nearest existing parent)."""
    current = Path(os.path.realpath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return str(current)


# ------------------------------------------------------------------------------------------------------ leases


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a lock or the scheduler lease, for messages: "in use by ... since ..."."""

    key: str
    holder: str
    purpose: str
    acquired_at: datetime
    lease_until: datetime

    def describe(self) -> str:
        what = f" ({self.purpose})" if self.purpose else ""
        return f"{holder_worker(self.holder)}{what} since {self.acquired_at:%Y-%m-%d %H:%M:%S} UTC"


def _insert_ignoring_conflict(store: Store, table: Table) -> Insert:
    # each dialect's module is imported when used: loading PostgreSQL's costs every SQLite command start-up time
    if store.dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    if store.dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table)  # pragma: no cover - only SQLite and PostgreSQL are supported


def _check(now: datetime, lease: timedelta) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    if lease <= timedelta(0):
        raise ValueError("a lease must be longer than zero")


class _Leases:
    """The same four operations on the repository locks and on the scheduler lease."""

    def __init__(self, table: Table, key_column: str, *, with_purpose: bool) -> None:
        self.table = table
        self.key = table.c[key_column]
        self.with_purpose = with_purpose

    def acquire(
        self, store: Store, key: str, holder: str, lease: timedelta, *, purpose: str = "", now: datetime | None = None
    ) -> bool:
        now = now or _now()
        _check(now, lease)
        values: dict[str, Any] = {
            self.key.name: key,
            "holder": holder,
            "acquired_at": now,
            "lease_until": now + lease,
        }
        if self.with_purpose:
            values["purpose"] = purpose
        with store.connection(write=True) as connection:
            connection.execute(_insert_ignoring_conflict(store, self.table).values(**values))
            # Held already: take it over only if its lease ran out (its holder died or lost the database too long).
            connection.execute(
                update(self.table)
                .where(self.key == key, self.table.c.lease_until < now, self.table.c.holder != holder)
                .values(**values)
            )
            # Read back rather than trust rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING. Holder
            # ids are unique per acquisition, so finding ours means this call won (the row is locked until commit).
            current = connection.execute(select(self.table.c.holder).where(self.key == key)).scalar_one_or_none()
            return bool(current == holder)

    def renew(self, store: Store, key: str, holder: str, lease: timedelta, *, now: datetime | None = None) -> bool:
        """Extend the lease; False when ``holder`` no longer holds it (it expired and someone took it over).

        A lease that expired but that nobody took is still ours: renewing it is safe.
        """
        now = now or _now()
        _check(now, lease)
        with store.connection(write=True) as connection:
            changed = connection.execute(
                update(self.table).where(self.key == key, self.table.c.holder == holder).values(lease_until=now + lease)
            ).rowcount
            return bool(changed == 1)

    def release(self, store: Store, key: str, holder: str) -> bool:
        with store.connection(write=True) as connection:
            changed = connection.execute(
                delete(self.table).where(self.key == key, self.table.c.holder == holder)
            ).rowcount
            return bool(changed == 1)

    def holder_of(self, store: Store, key: str) -> LeaseInfo | None:
        with store.connection() as connection:
            row = connection.execute(select(self.table).where(self.key == key)).one_or_none()
        if row is None:
            return None
        return LeaseInfo(
            key=key,
            holder=row.holder,
            purpose=row.purpose if self.with_purpose else "",
            acquired_at=row.acquired_at,
            lease_until=row.lease_until,
        )

    def all(self, store: Store) -> list[LeaseInfo]:
        with store.connection() as connection:
            rows = connection.execute(select(self.table).order_by(self.key)).all()
        return [
            LeaseInfo(
                key=getattr(row, self.key.name),
                holder=row.holder,
                purpose=row.purpose if self.with_purpose else "",
                acquired_at=row.acquired_at,
                lease_until=row.lease_until,
            )
            for row in rows
        ]


_REPO = _Leases(_LOCK, "key", with_purpose=True)
_SCHEDULER = _Leases(_LEASE, "name", with_purpose=False)


def acquire(
    store: Store, key: str, holder: str, purpose: str, lease: timedelta, *, now: datetime | None = None
) -> bool:
    """Take the repository lock ``key`` for ``holder``: True if it was free or its lease had expired."""
    return _REPO.acquire(store, key, holder, lease, purpose=purpose, now=now)


def renew(store: Store, key: str, holder: str, lease: timedelta, *, now: datetime | None = None) -> bool:
    """Extend a repository lock; False if ``holder`` lost it."""
    return _REPO.renew(store, key, holder, lease, now=now)


def release(store: Store, key: str, holder: str) -> bool:
    """Give a repository lock back; False if ``holder`` did not hold it (any more)."""
    return _REPO.release(store, key, holder)


def lock_holder(store: Store, key: str) -> LeaseInfo | None:
    """Who holds the repository lock ``key`` (possibly with an expired lease), or None."""
    return _REPO.holder_of(store, key)


def all_locks(store: Store) -> list[LeaseInfo]:
    return _REPO.all(store)


def acquire_scheduler(
    store: Store, holder: str, lease: timedelta, *, name: str = SCHEDULER_LEASE, now: datetime | None = None
) -> bool:
    """Become the daemon that runs scheduled jobs for this database."""
    return _SCHEDULER.acquire(store, name, holder, lease, now=now)


def renew_scheduler(
    store: Store, holder: str, lease: timedelta, *, name: str = SCHEDULER_LEASE, now: datetime | None = None
) -> bool:
    return _SCHEDULER.renew(store, name, holder, lease, now=now)


def release_scheduler(store: Store, holder: str, *, name: str = SCHEDULER_LEASE) -> bool:
    return _SCHEDULER.release(store, name, holder)


def scheduler_holder(store: Store, *, name: str = SCHEDULER_LEASE) -> LeaseInfo | None:
    return _SCHEDULER.holder_of(store, name)


# ------------------------------------------------------------------------------------------- a held lock


class RepoBusy(PreuveError):
    """A repository's lock stayed with someone else for the whole wait."""

    def __init__(self, ref: str, holder: LeaseInfo | None, waited: timedelta) -> None:
        who = holder.describe() if holder is not None else "another process (it has just released it)"
        super().__init__(
            FailureClass.REPO_LOCKED,
            f"The repository of {ref} is in use by {who}; waited {format_duration(waited.total_seconds())} for "
            "it. Preuve runs one restic operation per repository at a time: try again once it is done, or raise "
            "daemon.lock_wait in preuve.toml.",
        )
        self.holder = holder


class RepoLease:
    """One acquisition of one repository's lock: acquire (or wait for) it, keep it alive, give it back."""

    def __init__(self, store: Store, key: str, purpose: str, lease: timedelta, *, holder: str | None = None) -> None:
        self.store = store
        self.key = key
        self.purpose = purpose
        self.lease = lease
        self.holder = holder or new_holder()
        self.held = False

    @classmethod
    def for_target(cls, config: Config, store: Store, target: TargetRef, purpose: str) -> RepoLease:
        """A (not yet acquired) lock on ``target``'s repository, with the configured lease (daemon.lock_lease)."""
        return cls(store, repo_key(config, target), purpose, parse_duration(config.settings.daemon.lock_lease))

    def try_acquire(self) -> bool:
        self.held = acquire(self.store, self.key, self.holder, self.purpose, self.lease)
        return self.held

    def wait(
        self,
        timeout: timedelta,
        *,
        poll_s: float = 1.0,
        on_wait: Callable[[LeaseInfo], None] | None = None,
        stop: threading.Event | None = None,
    ) -> bool:
        """Try until ``timeout``; ``on_wait`` is told once who holds it. True once held."""
        deadline = _now() + timeout
        told = False
        waiter = stop or threading.Event()
        while True:
            if self.try_acquire():
                return True
            if not told and on_wait is not None:
                info = lock_holder(self.store, self.key)
                if info is not None:
                    on_wait(info)
                    told = True
            remaining = (deadline - _now()).total_seconds()
            if remaining <= 0 or waiter.wait(min(poll_s, remaining)):
                return False

    def wait_or_raise(
        self, ref: str, timeout: timedelta, *, on_wait: Callable[[LeaseInfo], None] | None = None
    ) -> None:
        """:meth:`wait`, then :class:`RepoBusy` naming the holder if the lock stayed taken."""
        if not self.wait(timeout, on_wait=on_wait):
            raise RepoBusy(ref, lock_holder(self.store, self.key), timeout)

    def renew(self) -> bool:
        return renew(self.store, self.key, self.holder, self.lease)

    def release(self) -> None:
        if self.held:
            release(self.store, self.key, self.holder)
            self.held = False

    @contextmanager
    def kept_alive(self, on_lost: Callable[[], None] | None = None) -> Iterator[RepoLease]:
        """Renew the lease every third of it while the block runs (a heartbeat thread).

        ``on_lost`` is called once if someone else took the lock over (our lease expired: the database was
        out of reach longer than the lease); the caller should stop touching the repository.
        """
        beat = Heartbeat(self.renew, self.lease / 3, on_lost=on_lost, name=f"lease {self.key}")
        beat.start()
        try:
            yield self
        finally:
            beat.stop()

    def __repr__(self) -> str:
        return f"RepoLease({self.key!r}, holder={self.holder!r}, held={self.held})"


class Heartbeat:
    """Calls ``renew`` every ``interval`` on a thread of its own until stopped.

    A database error is logged and retried at the next beat (the lease covers a few missed beats); ``renew``
    returning False means the lease was lost: ``on_lost`` runs once and the heartbeat ends.
    """

    def __init__(
        self,
        renew: Callable[[], bool],
        interval: timedelta,
        *,
        on_lost: Callable[[], None] | None = None,
        name: str = "lease",
    ) -> None:
        self._renew = renew
        self._interval_s = max(interval.total_seconds(), 0.05)
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {name}", daemon=True)
        self.name = name
        self.lost = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                held = self._renew()
            except SQLAlchemyError as exc:
                log.warning("could not renew %s: database unavailable (%s)", self.name, type(exc).__name__)
                continue
            if not held:
                self.lost = True
                log.error("lost %s: another process took it over after our lease expired", self.name)
                if self._on_lost is not None:
                    self._on_lost()
                return
