"""The drill queue: requests go in as ``queued`` rows, dispatchers take them out under the limits.

Everything lives in the results database, so a request survives restarts and any daemon sharing the database may
run it: :func:`enqueue_drill` inserts, :func:`claimable` lists what may start now, :func:`select_claimable`
applies the limits (pure, tested with frozen time), and :func:`recover` closes what a dead worker left running.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from preuve.config.loader import Config
from preuve.drills.result import DrillKind, DrillStatus
from preuve.errors import ConfigurationError
from preuve.scheduler import locks
from preuve.store.db import Store
from preuve.store.records import ActiveDrill, active_drills, create_drill, interrupt_and_retry, worker_id

log = logging.getLogger("preuve.scheduler")

RECOVERED_MESSAGE = (
    "The drill was interrupted: the process running it ({worker}) stopped before it finished (crash, kill or "
    "power loss); a retry was queued."
)


def _now() -> datetime:
    return datetime.now(UTC)


def enqueue_drill(
    store: Store,
    ref: str,
    kind: DrillKind | str,
    requested_by: str,
    not_before: datetime | None = None,
    options: dict[str, Any] | None = None,
) -> int:
    """Queue a drill of ``ref`` (status ``queued``) for a dispatcher; returns its id at once.

    ``not_before``: not claimed before this instant (the scheduler's jitter). ``options``: "snapshot" (id or
    prefix) and, for integrity runs, "subset" ("n/t"; chosen by the rotation when the drill starts if absent).
    """
    wanted = {key: value for key, value in (options or {}).items() if value}
    return create_drill(
        store, ref, DrillKind(kind), requested_by, status=DrillStatus.QUEUED, options=wanted, not_before=not_before
    )


def claimable(store: Store, *, now: datetime | None = None) -> list[ActiveDrill]:
    """Queued drills whose ``not_before`` has passed, oldest request first."""
    return active_drills(store, DrillStatus.QUEUED, due_at=now or _now())


def running(store: Store) -> list[ActiveDrill]:
    return active_drills(store, DrillStatus.RUNNING)


# ------------------------------------------------------------------------------------------------ the limits


@dataclass(frozen=True)
class Slot:
    """A drill as the limits see it: which repository it reads and which storage host it loads."""

    drill_id: int
    repo: str  # locks.repo_key
    host: str  # locks.storage_host


@dataclass(frozen=True)
class Limits:
    max_total: int  # drills running at once (Settings.max_concurrent_drills)
    max_per_host: int  # of them against one storage host (daemon.max_per_storage_host)


def select_claimable(candidates: Sequence[Slot], busy: Sequence[Slot], limits: Limits) -> list[Slot]:
    """The candidates (oldest first) that may start now, given the drills already running (``busy``).

    At most ``max_total`` running in all, ``max_per_host`` per storage host, and never two on one repository.
    A candidate that does not fit is skipped, not waited for: the next one, on another host, may start (no
    head-of-line blocking behind a busy NAS).
    """
    total = len(busy)
    per_host = Counter(slot.host for slot in busy)
    repos = {slot.repo for slot in busy}
    chosen: list[Slot] = []
    for slot in candidates:
        if total >= limits.max_total:
            break
        if slot.repo in repos or per_host[slot.host] >= limits.max_per_host:
            continue
        chosen.append(slot)
        total += 1
        per_host[slot.host] += 1
        repos.add(slot.repo)
    return chosen


def slot_for(config: Config, drill_id: int, ref: str) -> Slot | None:
    """The slot of a drill of ``ref``; None when the target is not (any more) in the configuration."""
    try:
        target = config.target(ref)
    except ConfigurationError:
        return None
    return Slot(drill_id, locks.repo_key(config, target), locks.storage_host(config, target))


def busy_slots(config: Config, drills: Sequence[ActiveDrill]) -> list[Slot]:
    """Running drills as slots; one whose target left the configuration still counts, on a host of its own."""
    slots = []
    for drill in drills:
        slot = slot_for(config, drill.id, drill.target)
        slots.append(slot or Slot(drill.id, f"unknown:{drill.target}", f"unknown:{drill.target}"))
    return slots


# ------------------------------------------------------------------------------------------- crash recovery


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _local_pid(worker: str, host: str) -> int | None:
    """The pid of a "pid@host" worker of this host, else None."""
    pid, sep, worker_host = worker.partition("@")
    if not sep or worker_host != host or not pid.isdigit():
        return None
    return int(pid)


@dataclass
class Recovery:
    interrupted: list[int] = field(default_factory=list)
    retries: dict[int, int] = field(default_factory=dict)  # interrupted drill -> its retry
    released_locks: list[str] = field(default_factory=list)
    released_scheduler: str | None = None  # the holder of a scheduler lease whose process is gone


def recover(
    store: Store,
    *,
    now: datetime | None = None,
    own: Callable[[int], bool] | None = None,
    pid_alive: Callable[[int], bool] = _pid_alive,
    host: str | None = None,
) -> Recovery:
    """Close the drills a dead worker left ``running`` and queue one retry of each; free its locks and its
    scheduler lease (a daemon killed on this host hands the schedule over at once, not after its lease).

    A worker is dead when it is a "pid@host" of this host whose pid is gone, or when it holds no repository
    lock with a live lease (every running drill's worker holds one, renewed every third of the lease: a
    worker on another server that stopped renewing is dead or cut off, and its lock can be taken over anyway).
    ``own(drill_id)`` says whether this very process is running that drill (never recovered from here).
    Safe to run from several daemons at once: each drill is closed and retried by one of them only.
    """
    now = now or _now()
    host = host or socket.gethostname()
    me = worker_id()
    result = Recovery()
    # Drills first, locks second: a drill's worker takes its lock before the drill turns running, so a drill seen
    # running here has its lock visible below (read the other way round, a drill started in between would look
    # lock-less, hence dead).
    drills = running(store)
    held = locks.all_locks(store)
    # Locks of dead processes of this host: free them now rather than after their lease, so the retry can start.
    for info in held:
        pid = _local_pid(locks.holder_worker(info.holder), host)
        dead = pid is not None and pid != os.getpid() and not pid_alive(pid)
        if dead and locks.release(store, info.key, info.holder):
            result.released_locks.append(info.key)
            log.warning(
                "released the lock on %s held by %s, a process that no longer exists",
                info.key,
                info.holder,
                extra={"event": "lock.released_stale", "repository": info.key},
            )
    lease = locks.scheduler_holder(store)
    if lease is not None:
        pid = _local_pid(locks.holder_worker(lease.holder), host)
        if (
            pid is not None
            and pid != os.getpid()
            and not pid_alive(pid)
            and locks.release_scheduler(store, lease.holder)
        ):
            result.released_scheduler = lease.holder
            log.warning(
                "released the scheduler lease held by %s, a process that no longer exists",
                lease.holder,
                extra={"event": "scheduler.released_stale"},
            )
    live_workers = {
        locks.holder_worker(info.holder)
        for info in held
        if info.lease_until >= now and info.key not in result.released_locks
    }
    for drill in drills:
        worker = drill.worker or ""
        if worker == me:
            # This process: alive by definition, unless it does not know the drill (left by an earlier process
            # that had our pid, on a server whose pids were reused after a reboot).
            dead = own is not None and not own(drill.id)
        else:
            pid = _local_pid(worker, host)
            dead = (pid is not None and not pid_alive(pid)) or worker not in live_workers
        if not dead:
            continue
        marked, retry = interrupt_and_retry(store, drill.id, RECOVERED_MESSAGE.format(worker=worker or "unknown"))
        if not marked:
            continue
        result.interrupted.append(drill.id)
        if retry is not None:
            result.retries[drill.id] = retry
        log.warning(
            "drill %d of %s was left running by %s, which is gone: marked interrupted%s",
            drill.id,
            drill.target,
            worker or "an unknown worker",
            f", retry queued as drill {retry}" if retry is not None else " (it was a retry already: not retried)",
            extra={"event": "drill.recovered", "drill_id": drill.id, "target": drill.target, "retry_id": retry},
        )
    return result


def jitter_offset(ref: str, jitter: timedelta) -> timedelta:
    """A deterministic delay in [0, jitter) for ``ref``: sha256 of the ref, modulo the jitter in whole seconds.

    The same target always gets the same delay (its drills keep a steady rhythm); 300 targets scheduled at 02:00
    spread over the jitter instead of starting together.
    """
    seconds = int(jitter.total_seconds())
    if seconds <= 0:
        return timedelta(0)
    digest = int.from_bytes(hashlib.sha256(ref.encode("utf-8")).digest()[:8], "big")
    return timedelta(seconds=digest % seconds)
