"""The seam between "a drill is due" and "run this drill": functions that take ids, read everything else from the
configuration and the store, and write the result through the store. Nothing about a running drill lives only in
the memory of whoever started it.
"""

from __future__ import annotations

import getpass
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from preuve.config.loader import Config, load_config
from preuve.drills.engine import DrillOptions, Progress, execute_drill
from preuve.drills.integrity import next_subset, parts_for
from preuve.drills.result import DrillKind, DrillResult, DrillStatus
from preuve.drills.sandbox import sweep
from preuve.store.db import Store
from preuve.store.records import (
    claim_drill,
    create_drill,
    finish_drill,
    get_drill,
    list_drills,
    record_snapshots,
    sync_config,
)


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


def run_now(
    config: Config,
    store: Store,
    ref: str,
    options: DrillOptions,
    *,
    requested_by: str,
    progress: Progress | None = None,
) -> tuple[int, DrillResult]:
    """Record a drill as running, run it in this process, record its result."""
    target = config.target(ref)
    sweep(config.sandbox_root)
    sync_config(store, config)
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
    result = execute_drill(config, target, drill_id, options, progress)
    _record(store, target.ref, drill_id, result)
    return drill_id, result


def _record(store: Store, ref: str, drill_id: int, result: DrillResult) -> None:
    if result.snapshots and result.started_at is not None:
        record_snapshots(store, ref, result.snapshots, seen_at=result.started_at, complete=True)
    finish_drill(store, drill_id, result)


def run_queued(config_dir: str, drill_id: int) -> DrillStatus | None:
    """Run a drill that was queued in the store (the daemon's and remote workers' entry point).

    Claims it first (only one worker wins); returns None when someone else had it.
    """
    config = load_config(Path(config_dir))
    store = Store.open(config.database_url)
    try:
        if not claim_drill(store, drill_id, who()):
            return None
        detail = get_drill(store, drill_id)
        if detail is None:
            return None
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
        target = config.target(detail.target)
        result = execute_drill(config, target, drill_id, options)
        _record(store, target.ref, drill_id, result)
        return result.status
    finally:
        store.close()
