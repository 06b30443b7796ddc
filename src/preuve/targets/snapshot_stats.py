"""Sizes and changes of snapshots, measured by probes for the anomaly and retention rules.

For each snapshot asked for: ``restic stats --json --mode restore-size ID`` (bytes and entries a restore would
write) and ``restic diff --json PREVIOUS ID`` against the snapshot taken before it (files changed, added or
removed). Each restic call costs about 0.5 s of key derivation, so callers ask for a few snapshots per probe,
those not measured yet, newest first.

The numbers are extras: a failure is logged and the snapshot skipped (it stays unmeasured and is tried again by
a later probe, within the same time budget); only a probe's own listing decides whether the probe succeeded.

The first snapshot of a repository has no earlier one to compare with: its ``changed_files`` is None ("no
baseline"), never 0, which would claim that nothing changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from preuve.errors import PreuveError
from preuve.restic import commands
from preuve.restic.parse import DiffStatistics, Snapshot, SnapshotSize, parse_diff_statistics, parse_stats

if TYPE_CHECKING:
    from preuve.restic.runner import Restic

log = logging.getLogger(__name__)

MIN_COMMAND_S = 2.0  # below this much time left, no restic call is started: its key derivation alone takes 0.5 s


@dataclass(frozen=True)
class SnapshotStats:
    snapshot_id: str
    measured_at: datetime
    size_bytes: int | None  # restore size
    file_count: int | None  # files, directories and symlinks, as `restic stats` counts them
    changed_files: int | None  # changed + added + removed files against ``compared_with``; None: no baseline
    compared_with: str | None = None  # id of the previous snapshot diffed against


def previous_snapshot(snapshots: Sequence[Snapshot], snapshot: Snapshot) -> Snapshot | None:
    """The snapshot taken just before ``snapshot``: of the same host and paths when there is one, else any.

    A repository shared by several hosts or backup jobs interleaves their snapshots; comparing a job with
    another job's snapshot would count every file as changed.
    """
    earlier = [s for s in snapshots if s.id != snapshot.id and (s.time, s.id) < (snapshot.time, snapshot.id)]
    if not earlier:
        return None
    earlier.sort(key=lambda s: (s.time, s.id))
    paths = sorted(snapshot.paths)
    for candidate in reversed(earlier):
        if candidate.hostname == snapshot.hostname and sorted(candidate.paths) == paths:
            return candidate
    return earlier[-1]


def measure(restic: Restic, snapshots: list[Snapshot], wanted: list[str], *, deadline_s: float) -> list[SnapshotStats]:
    """Measure the ``wanted`` snapshots (ids, in the order given) found in ``snapshots`` (the repository's
    listing), within ``deadline_s`` seconds for all of them.

    A snapshot is returned only when every command it needs worked, so a recorded measurement is complete:
    ``changed_files`` None then means "no earlier snapshot", never "diff failed". Snapshots not in the listing,
    those a command failed for, and those the time left cannot cover are left out (a later probe retries them).
    """
    end = time.monotonic() + deadline_s
    by_id = {s.id: s for s in snapshots}
    results: list[SnapshotStats] = []
    for snapshot_id in dict.fromkeys(wanted):
        snapshot = by_id.get(snapshot_id)
        if snapshot is None:
            log.info("snapshot %s is not in the listing of %s: not measured", snapshot_id[:8], restic.label)
            continue
        previous = previous_snapshot(snapshots, snapshot)
        try:
            size = _stats(restic, snapshot, end)
            diff = _diff(restic, previous, snapshot, end) if size is not None and previous is not None else None
        except _OutOfTime:
            log.info("no time left to measure more snapshots of %s", restic.label)
            break
        if size is None or (previous is not None and diff is None):
            continue
        results.append(
            SnapshotStats(
                snapshot_id=snapshot.id,
                measured_at=datetime.now(UTC),
                size_bytes=size.total_size,
                file_count=size.file_count,
                changed_files=diff.files_touched if diff is not None else None,
                compared_with=previous.id if previous is not None else None,
            )
        )
    return results


class _OutOfTime(Exception):
    """The measuring budget is spent (or a command hit it): stop measuring."""


def _deadline(end: float) -> float:
    remaining = end - time.monotonic()
    if remaining < MIN_COMMAND_S:
        raise _OutOfTime
    return remaining


def _stats(restic: Restic, snapshot: Snapshot, end: float) -> SnapshotSize | None:
    what = f"restic stats of {snapshot.short_id} on {restic.label}"
    try:
        completed, error = restic.run(
            commands.stats(snapshot.id, "restore-size"),
            what=f"measuring snapshot {snapshot.short_id}",
            deadline_s=_deadline(end),
            check=False,
        )
    except (PreuveError, OSError) as exc:
        log.warning("%s failed: %s", what, exc)
        return None
    if error is not None:
        log.warning("%s failed: %s", what, error)
        if completed.timed_out:
            raise _OutOfTime
        return None
    try:
        return parse_stats(completed.stdout)
    except ValueError as exc:
        log.warning("%s: %s", what, exc)
        return None


def _diff(restic: Restic, previous: Snapshot, snapshot: Snapshot, end: float) -> DiffStatistics | None:
    what = f"restic diff {previous.short_id} {snapshot.short_id} on {restic.label}"
    found: list[DiffStatistics] = []

    def on_line(line: str) -> None:
        # Only the closing statistics line matters; change lines are counted by execute, not kept.
        if '"statistics"' not in line:
            return
        try:
            statistics = parse_diff_statistics(line)
        except ValueError as exc:
            log.warning("%s: %s", what, exc)
            return
        if statistics is not None:
            found.append(statistics)

    try:
        completed, error = restic.run(
            commands.diff(previous.id, snapshot.id),
            what=f"comparing snapshot {snapshot.short_id} with {previous.short_id}",
            deadline_s=_deadline(end),
            on_stdout=on_line,
            keep_stdout=False,
            check=False,
        )
    except (PreuveError, OSError) as exc:
        log.warning("%s failed: %s", what, exc)
        return None
    if error is not None:
        log.warning("%s failed: %s", what, error)
        if completed.timed_out:
            raise _OutOfTime
        return None
    if not found:
        log.warning("%s printed no statistics", what)
        return None
    return found[-1]
