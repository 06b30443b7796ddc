"""The seam between "a drill is due" and "run this drill": functions that take ids, read everything else from the
configuration and the store, and write the result through the store. Nothing about a running drill lives only in
the memory of whoever started it: its restic commands reach the store as they run (:mod:`preuve.drills.live`).

Every drill holds its repository's lock (:mod:`preuve.scheduler.locks`) from before its row turns ``running`` until
after its result is written, whether a technician runs it (:func:`run_now`) or a daemon does (:func:`run_queued`):
never two restic operations on one repository at once, and a running drill whose worker holds no live lock is one
whose worker died (crash recovery relies on it).
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from preuve.config.loader import Config, TargetRef, load_config
from preuve.config.units import parse_duration
from preuve.drills.engine import DrillOptions, Progress, execute_drill
from preuve.drills.integrity import next_subset, parts_for
from preuve.drills.live import LiveLog
from preuve.drills.result import DrillKind, DrillResult, DrillStatus
from preuve.drills.sandbox import sweep
from preuve.errors import ConfigurationError, FailureClass
from preuve.restic import execute
from preuve.scheduler.locks import LeaseInfo, RepoBusy, RepoLease
from preuve.store.db import Store
from preuve.store.records import (
    claim_drill,
    create_drill,
    finish_drill,
    get_drill,
    list_drills,
    record_snapshots,
    sync_config,
    worker_id,
)

log = logging.getLogger(__name__)

__all__ = ["RepoBusy", "integrity_subset", "repo_lease", "run_now", "run_queued", "who"]

RECORD_RETRY_S = 120.0  # how long a finished drill keeps trying to write its result while the database is away


def who() -> str:
    """Who asked, for the record: the login and the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def cadence(expression: str | None, fallback: timedelta) -> timedelta:
    """The interval between two runs of a cron expression (the first two upcoming), else ``fallback``."""
    if not expression:
        return fallback
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(expression, timezone=UTC)
    first = trigger.get_next_fire_time(None, datetime.now(UTC))
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    return (second - first) if first and second else fallback


def integrity_subset(config: Config, store: Store, ref: str) -> str:
    """The next part to read: parts so that every one is read within the policy's window at the schedule's pace."""
    target = config.target(ref)
    policy = config.client_policy(target.client.id)
    schedule = target.client.job.schedule
    parts = parts_for(policy.integrity.window, cadence(schedule.integrity, policy.drill.every))
    # A part counts as read once `check` read it, whether it found damage or not: the rotation must move on, or
    # one damaged part would keep every other part from being read. (Coverage counts only clean reads.)
    history = [
        (str(d.options.get("subset", "")), d.finished_at or d.requested_at)
        for d in list_drills(store, target=ref, limit=None, kind=DrillKind.INTEGRITY)
        if d.status in (DrillStatus.PASSED, DrillStatus.FAILED)
    ]
    return str(next_subset(parts, history))


def repo_lease(config: Config, store: Store, target: TargetRef, purpose: str) -> RepoLease:
    """A (not yet acquired) lock on ``target``'s repository with the configured lease."""
    return RepoLease.for_target(config, store, target, purpose)


@contextmanager
def _held(lease: RepoLease) -> Iterator[execute.CancelScope]:
    """Keep ``lease`` alive for the block, in the caller's cancel scope (a new one if none): losing the lock
    stops the drill's restic at once, since someone else may now be using the repository."""
    scope = execute.current_scope() or execute.CancelScope(f"lock {lease.key}")
    with execute.cancel_scope(scope), lease.kept_alive(on_lost=lambda: scope.cancel("the repository lock was lost")):
        yield scope


def run_now(
    config: Config,
    store: Store,
    ref: str,
    options: DrillOptions,
    *,
    requested_by: str,
    progress: Progress | None = None,
    lock_wait: timedelta | None = None,
    on_wait: Callable[[LeaseInfo], None] | None = None,
) -> tuple[int, DrillResult]:
    """Take the repository's lock (waiting up to ``lock_wait``, default daemon.lock_wait), record a drill as
    running, run it in this process, record its result, give the lock back.

    :class:`RepoBusy` if the lock stayed taken; nothing is recorded then (the drill never started). ``on_wait``
    is told once who holds the lock when it has to wait.
    """
    target = config.target(ref)
    sweep(config.sandbox_root)
    sync_config(store, config)
    wait = lock_wait if lock_wait is not None else parse_duration(config.settings.daemon.lock_wait)
    lease = repo_lease(config, store, target, f"drill of {target.ref} asked by {requested_by}")
    lease.wait_or_raise(target.ref, wait, on_wait=on_wait)
    try:
        with _held(lease):
            if options.kind is DrillKind.INTEGRITY and options.subset is None:
                options = DrillOptions(kind=options.kind, subset=integrity_subset(config, store, target.ref))
            recorded = {"snapshot": options.snapshot, "subset": options.subset}
            drill_id = create_drill(
                store,
                target.ref,
                options.kind,
                requested_by,
                status=DrillStatus.RUNNING,
                options={k: v for k, v in recorded.items() if v},
            )
            with LiveLog(store, drill_id) as live:
                result = execute_drill(config, target, drill_id, options, progress, watcher=live)
            _record(store, target.ref, drill_id, result)
    finally:
        lease.release()
    return drill_id, result


def _record(store: Store, ref: str, drill_id: int, result: DrillResult) -> None:
    if result.snapshots and result.started_at is not None:
        record_snapshots(store, ref, result.snapshots, seen_at=result.started_at, complete=True)
    finish_drill(store, drill_id, result)


def _record_retrying(store: Store, ref: str, drill_id: int, result: DrillResult, patience_s: float) -> None:
    """:func:`_record`, retried while the database is unreachable (PostgreSQL restarting): a drill that ran for
    an hour must not lose its result to a ten-second outage."""
    deadline = time.monotonic() + patience_s
    delay = 1.0
    while True:
        try:
            _record(store, ref, drill_id, result)
            return
        except DBAPIError as exc:
            transient = exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
            if not transient or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "could not record drill %d (database unavailable: %s); retrying in %.0f s",
                drill_id,
                type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def run_queued(
    config_dir: str,
    drill_id: int,
    *,
    config: Config | None = None,
    store: Store | None = None,
    lock: RepoLease | None = None,
) -> DrillStatus | None:
    """Run a drill that was queued in the store (the daemon's and remote workers' entry point).

    Takes the repository's lock without waiting (a drill whose repository is busy stays queued for a later
    round), then claims the drill (only one worker wins), runs it and records its result. Returns None when
    the drill was not run: someone else had it, or its repository was busy.

    A caller that already holds an open ``config`` and ``store`` passes them (they are not closed here), and one
    that already acquired the repository's ``lock`` passes it: it is kept alive while the drill runs, and left
    to the caller to release. The drill runs in the caller's cancel scope (:func:`preuve.restic.execute.cancel_scope`)
    if there is one, so a daemon can stop it; it then ends ``interrupted``.
    """
    own_store = store is None
    config = config or load_config(Path(config_dir))
    store = store or Store.open(config.database_url)
    try:
        detail = get_drill(store, drill_id)
        if detail is None or detail.status is not DrillStatus.QUEUED:
            return None
        try:
            target = config.target(detail.target)
        except ConfigurationError as exc:
            return _refuse(store, drill_id, detail.kind, exc)
        lease = lock or repo_lease(config, store, target, f"drill #{drill_id} of {target.ref}")
        if lock is None and not lease.try_acquire():
            return None
        try:
            if not claim_drill(store, drill_id, worker_id()):
                return None
            with _held(lease):
                recorded = detail.options if isinstance(detail.options, dict) else {}
                kind = DrillKind(detail.kind)
                subset = recorded.get("subset")
                if kind is DrillKind.INTEGRITY and not subset:
                    subset = integrity_subset(config, store, detail.target)
                options = DrillOptions(
                    kind=kind,
                    snapshot=str(recorded["snapshot"]) if recorded.get("snapshot") else None,
                    subset=str(subset) if subset else None,
                )
                with LiveLog(store, drill_id) as live:
                    result = execute_drill(config, target, drill_id, options, watcher=live)
                _record_retrying(store, target.ref, drill_id, result, RECORD_RETRY_S)
            return result.status
        finally:
            if lock is None:
                lease.release()
    finally:
        if own_store:
            store.close()


def _refuse(store: Store, drill_id: int, kind: DrillKind, exc: ConfigurationError) -> DrillStatus | None:
    """A queued drill of a target no longer configured: closed as an error rather than left queued forever."""
    if not claim_drill(store, drill_id, worker_id()):
        return None
    now = datetime.now(UTC)
    result = DrillResult(
        status=DrillStatus.ERROR,
        kind=kind,
        failure_class=FailureClass.INTERNAL,
        message="The drill was not run: " + "; ".join(exc.problems),
        started_at=now,
        finished_at=now,
    )
    finish_drill(store, drill_id, result)
    return result.status
