"""Build the facts a client's policy is evaluated over, from its configuration and the results store.

A fixed handful of queries per client whatever its history holds (targets, snapshots, drills, canary findings,
probes), each reading only the columns the rules need, in bulk: a year of hourly probes is one query, not one
per row.

``until`` gives the facts as they stood at that instant, so that a report for a past period reads the same
whenever it is produced: rows that appeared later are left out, and what was learnt later about earlier rows is
hidden too (a snapshot that went missing afterwards is not gone yet; a drill that finished afterwards is still
running, without its outcome; a snapshot measured afterwards has no size yet).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from preuve.config.loader import Config
from preuve.config.model import RestTarget
from preuve.drills.result import DrillStatus
from preuve.policies.facts import ClientFacts, DrillFact, ProbeFact, SnapshotFact, TargetFacts
from preuve.store.db import Store
from preuve.store.models import metadata

_TARGET: Table = metadata.tables["target"]
_SNAPSHOT: Table = metadata.tables["snapshotseen"]
_DRILL: Table = metadata.tables["drillrun"]
_FINDING: Table = metadata.tables["drillfinding"]
_PROBE: Table = metadata.tables["probe"]


def gather(config: Config, store: Store, client_id: str, *, until: datetime | None = None) -> ClientFacts:
    """Every configured target of ``client_id`` with its snapshots, drills and probes, oldest first.

    KeyError if the configuration has no such client. Targets the store has never seen (not yet synced) get
    empty histories.
    """
    if until is not None and (until.tzinfo is None or until.utcoffset() is None):
        raise ValueError("until must be an aware datetime")
    client = config.clients[client_id]
    configured = [(f"{client_id}/{name}", name, spec) for name, spec in sorted(client.job.targets.items())]
    refs = [ref for ref, _, _ in configured]

    with store.connection() as connection:
        ids: dict[str, int] = {
            str(ref): int(target_id)
            for target_id, ref in connection.execute(
                select(_TARGET.c.id, _TARGET.c.ref).where(_TARGET.c.client_id == client_id, _TARGET.c.ref.in_(refs))
            )
        }
        by_id = {target_id: ref for ref, target_id in ids.items()}
        target_ids = list(by_id)
        snapshots: dict[str, list[SnapshotFact]] = defaultdict(list)
        drills: dict[str, list[DrillFact]] = defaultdict(list)
        probes: dict[str, list[ProbeFact]] = defaultdict(list)
        if target_ids:
            for ref, snapshot in _snapshots(connection, target_ids, by_id, until):
                snapshots[ref].append(snapshot)
            canaries = {ref: {c.path for c in spec.canaries} for ref, _, spec in configured}
            failed = _failed_canaries(connection, target_ids, by_id, canaries, until)
            for ref, drill in _drills(connection, target_ids, by_id, failed, until):
                drills[ref].append(drill)
            for ref, probe in _probes(connection, target_ids, by_id, until):
                probes[ref].append(probe)

    targets = []
    for ref, name, spec in configured:
        targets.append(
            TargetFacts(
                ref=ref,
                name=name,
                kind=spec.kind,
                location=spec.location,
                media=spec.media,
                source=spec.source,
                password_file=config.path(spec.password_file),
                canaries=tuple(c.path for c in spec.canaries),
                append_only=spec.append_only if isinstance(spec, RestTarget) else False,
                snapshots=tuple(snapshots.get(ref, ())),
                drills=tuple(drills.get(ref, ())),
                probes=tuple(probes.get(ref, ())),
            )
        )
    return ClientFacts(client_id=client_id, name=client.name, targets=tuple(targets))


def _snapshots(
    connection: Connection, target_ids: list[int], by_id: dict[int, str], until: datetime | None
) -> Iterable[tuple[str, SnapshotFact]]:
    s = _SNAPSHOT.c
    statement = select(
        s.target_id,
        s.snapshot_id,
        s.time,
        s.first_seen_at,
        s.last_seen_at,
        s.gone_at,
        s.hostname,
        s.paths,
        s.tags,
        s.size_bytes,
        s.file_count,
        s.changed_files,
        s.stats_at,
    ).where(s.target_id.in_(target_ids))
    if until is not None:
        statement = statement.where(s.first_seen_at <= until)
    strings = _Strings()
    for row in connection.execute(statement.order_by(s.target_id, s.time, s.id)):
        gone_at, last_seen_at = row.gone_at, row.last_seen_at
        measured = row.stats_at is not None
        if until is not None:
            if gone_at is not None and gone_at > until:
                gone_at = None
            last_seen_at = min(last_seen_at, until)
            measured = measured and row.stats_at <= until
        yield (
            by_id[row.target_id],
            SnapshotFact(
                id=row.snapshot_id,
                time=row.time,
                first_seen_at=row.first_seen_at,
                last_seen_at=last_seen_at,
                gone_at=gone_at,
                hostname=row.hostname,
                paths=strings.parse(row.paths),
                tags=strings.parse(row.tags),
                size_bytes=row.size_bytes if measured else None,
                file_count=row.file_count if measured else None,
                changed_files=row.changed_files if measured else None,
            ),
        )


def _failed_canaries(
    connection: Connection,
    target_ids: list[int],
    by_id: dict[int, str],
    canaries: dict[str, set[str]],
    until: datetime | None,
) -> dict[int, set[str]]:
    """drill id -> canary paths with a finding in that drill (a canary of the drill's own target)."""
    every = sorted({path for paths in canaries.values() for path in paths})
    if not every:
        return {}
    d, f = _DRILL.c, _FINDING.c
    statement = (
        select(f.drill_id, d.target_id, f.path)
        .join_from(_FINDING, _DRILL, f.drill_id == d.id)
        .where(d.target_id.in_(target_ids), f.path.in_(every))
    )
    if until is not None:
        statement = statement.where(d.finished_at <= until)
    failed: dict[int, set[str]] = defaultdict(set)
    for drill_id, target_id, path in connection.execute(statement):
        if path in canaries.get(by_id[target_id], ()):
            failed[drill_id].add(path)
    return failed


def _drills(
    connection: Connection,
    target_ids: list[int],
    by_id: dict[int, str],
    failed: dict[int, set[str]],
    until: datetime | None,
) -> Iterable[tuple[str, DrillFact]]:
    d = _DRILL.c
    statement = select(
        d.id,
        d.target_id,
        d.kind,
        d.status,
        d.failure_class,
        d.requested_at,
        d.started_at,
        d.finished_at,
        d.snapshot_id,
        d.snapshot_time,
        d.files_checked,
        d.bytes_in_snapshot,
        d.estimated_full_restore_s,
        d.restore_s,
        d.canaries_checked,
        d.subset,
    ).where(d.target_id.in_(target_ids))
    if until is not None:
        statement = statement.where(d.requested_at <= until)
    for row in connection.execute(statement.order_by(d.requested_at, d.id)):
        if until is not None and (row.finished_at is None or row.finished_at > until):
            # Still under way at `until`: queued or running, its outcome not known yet.
            started = row.started_at is not None and row.started_at <= until
            yield (
                by_id[row.target_id],
                DrillFact(
                    id=row.id,
                    kind=row.kind,
                    status=(DrillStatus.RUNNING if started else DrillStatus.QUEUED).value,
                    failure_class=None,
                    requested_at=row.requested_at,
                    finished_at=None,
                    subset=row.subset,
                ),
            )
            continue
        yield (
            by_id[row.target_id],
            DrillFact(
                id=row.id,
                kind=row.kind,
                status=row.status,
                failure_class=row.failure_class,
                requested_at=row.requested_at,
                finished_at=row.finished_at,
                snapshot_id=row.snapshot_id,
                snapshot_time=row.snapshot_time,
                files_checked=row.files_checked or 0,
                bytes_in_snapshot=row.bytes_in_snapshot or 0,
                estimated_full_restore_s=row.estimated_full_restore_s,
                restore_s=row.restore_s,
                canaries_checked=row.canaries_checked or 0,
                failed_canaries=tuple(sorted(failed.get(row.id, ()))),
                subset=row.subset,
            ),
        )


def _probes(
    connection: Connection, target_ids: list[int], by_id: dict[int, str], until: datetime | None
) -> Iterable[tuple[str, ProbeFact]]:
    p = _PROBE.c
    statement = select(p.id, p.target_id, p.finished_at, p.ok, p.failure_class, p.facts).where(
        p.target_id.in_(target_ids)
    )
    if until is not None:
        statement = statement.where(p.finished_at <= until)
    facts = _Facts()
    for row in connection.execute(statement.order_by(p.finished_at, p.id)):
        yield (
            by_id[row.target_id],
            ProbeFact(
                id=row.id,
                at=row.finished_at,
                ok=bool(row.ok),
                failure_class=row.failure_class,
                facts=facts.parse(row.facts),
            ),
        )


class _Strings:
    """JSON arrays of strings (paths, tags), parsed once per distinct text: most snapshots share theirs."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, ...]] = {}

    def parse(self, text: str) -> tuple[str, ...]:
        value = self._seen.get(text)
        if value is None:
            parsed = json.loads(text) if text else []
            value = tuple(str(item) for item in parsed) if isinstance(parsed, list) else ()
            self._seen[text] = value
        return value


class _Facts:
    """Probe facts (JSON objects), parsed once per distinct text: hourly probes mostly repeat themselves.

    Probes with the same text share one dict; ProbeFact is frozen and rules only read it.
    """

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, Any]] = {}

    def parse(self, text: str) -> dict[str, Any]:
        value = self._seen.get(text)
        if value is None:
            try:
                parsed = json.loads(text) if text else {}
            except json.JSONDecodeError:
                parsed = {}
            value = parsed if isinstance(parsed, dict) else {}
            self._seen[text] = value
        return value
