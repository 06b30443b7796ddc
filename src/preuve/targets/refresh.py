"""A probe, recorded: what `preuve targets probe` and the daemon's snapshot refresh both do.

The probe's row, the snapshot listing (the history RPO is measured on) and the sizes measured of a few snapshots
not measured yet, all written through the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from preuve.config.loader import Config, TargetRef
from preuve.scheduler.locks import LeaseInfo, RepoLease
from preuve.store.db import Store
from preuve.store.records import (
    list_snapshots,
    record_probe,
    record_snapshot_stats,
    snapshots_without_stats,
    sync_config,
)
from preuve.targets.facts import ProbeResult
from preuve.targets.probe import MEASURE_PER_PROBE, probe_target


def probe_and_record(config: Config, store: Store, target: TargetRef, *, sync: bool = True) -> tuple[int, ProbeResult]:
    """Probe ``target`` and record the result; returns the probe's id and the result."""
    if sync:
        sync_config(store, config)
    # Snapshots not measured yet: known ones without stats, and (not in `known`) new ones.
    wanted = snapshots_without_stats(store, target.ref, MEASURE_PER_PROBE)
    known = {record.snapshot.id for record in list_snapshots(store, target.ref)}
    result, _log = probe_target(config, target, wanted, known=known)
    # With a successful probe, its snapshot listing is recorded in the same transaction (complete listing).
    probe_id = record_probe(store, target.ref, result)
    for stats in result.snapshot_stats:
        record_snapshot_stats(
            store,
            target.ref,
            stats.snapshot_id,
            size_bytes=stats.size_bytes,
            file_count=stats.file_count,
            changed_files=stats.changed_files,
            at=stats.measured_at,
        )
    return probe_id, result


def probe_locked(
    config: Config,
    store: Store,
    target: TargetRef,
    *,
    wait: timedelta | None,
    purpose: str,
    on_wait: Callable[[LeaseInfo], None] | None = None,
) -> tuple[int, ProbeResult] | None:
    """:func:`probe_and_record` under the repository's lock: a probe is a restic operation too.

    ``wait=None``: do not wait, return None if the repository is busy (the daemon: the next refresh will do);
    else wait up to ``wait`` and raise :class:`preuve.scheduler.locks.RepoBusy` (a technician's command).
    """
    lease = RepoLease.for_target(config, store, target, purpose)
    if wait is None:
        if not lease.try_acquire():
            return None
    else:
        lease.wait_or_raise(target.ref, wait, on_wait=on_wait)
    try:
        with lease.kept_alive():
            return probe_and_record(config, store, target)
    finally:
        lease.release()
