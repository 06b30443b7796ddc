"""The seam between "a drill is due" and "run this drill": functions that take ids, read everything else from the
configuration and the store, and write the result through the store. Nothing about a running drill lives only in
the memory of whoever started it.
"""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path

from preuve.config.loader import Config, load_config
from preuve.drills.engine import DrillOptions, Progress, execute_drill
from preuve.drills.result import DrillKind, DrillResult, DrillStatus
from preuve.drills.sandbox import sweep
from preuve.store.db import Store
from preuve.store.records import claim_drill, create_drill, finish_drill, get_drill, record_snapshots, sync_config


def who() -> str:
    """Who asked, for the record: the login and the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


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
    drill_id = create_drill(
        store,
        target.ref,
        options.kind,
        requested_by,
        status=DrillStatus.RUNNING,
        options={"snapshot": options.snapshot} if options.snapshot else {},
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
        snapshot = detail.options.get("snapshot") if isinstance(detail.options, dict) else None
        options = DrillOptions(kind=DrillKind(detail.kind), snapshot=str(snapshot) if snapshot else None)
        target = config.target(detail.target)
        result = execute_drill(config, target, drill_id, options)
        _record(store, target.ref, drill_id, result)
        return result.status
    finally:
        store.close()
