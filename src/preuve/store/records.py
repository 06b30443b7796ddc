"""What the drill engine, the scheduler and the CLI read and write in the results store.

Every function opens its own transaction and returns plain frozen dataclasses, never ORM objects, so callers
can keep results after the session is gone and cannot change history by accident. Results are append-only:
a drill in a final status is never updated again, removed targets keep their rows, vanished snapshots are
marked gone, not deleted.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert, update
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, col, select

import preuve
from preuve import redact
from preuve.config.loader import Config
from preuve.drills.result import CommandLog, DrillKind, DrillResult, DrillStatus, Finding
from preuve.errors import FailureClass
from preuve.restic.parse import Snapshot
from preuve.store import ledger
from preuve.store.db import Store
from preuve.store.models import (
    Client,
    DrillRun,
    Probe,
    SnapshotSeen,
    Target,
    metadata,
)
from preuve.store.restore_log import close_running, save_commands
from preuve.targets.display import repository_display
from preuve.targets.facts import ProbeResult

_ACTIVE = (DrillStatus.QUEUED.value, DrillStatus.RUNNING.value)
_CLIENT: Table = metadata.tables["client"]
_TARGET: Table = metadata.tables["target"]
_SNAPSHOT: Table = metadata.tables["snapshotseen"]
_DRILL: Table = metadata.tables["drillrun"]
_FINDING: Table = metadata.tables["drillfinding"]
_COMMAND: Table = metadata.tables["drillcommand"]

WORKER_GONE_NOTE = "stopped before it finished: the process running the drill ended"
INTERRUPTED_MESSAGE = "the drill was interrupted before it finished (Preuve stopped or the server restarted)"


def _now() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    """This process as a drill worker: "pid@host"."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _json(value: Any) -> str:
    # Sorted keys: the same facts give the same text, so rows can be compared and diffed.
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


# ---------------------------------------------------------------------------------------------- plain records


@dataclass(frozen=True)
class DrillSummary:
    """One line of a drill listing."""

    id: int
    target: str  # "client/target"
    client: str  # client id
    kind: DrillKind
    status: DrillStatus
    requested_by: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    failure_class: FailureClass | None
    message: str
    snapshot_id: str | None
    snapshot_time: datetime | None
    files_checked: int | None
    bytes_restored: int | None
    duration_s: float | None
    worker: str | None
    options: dict[str, Any]  # what was asked: snapshot, integrity subset, ...


@dataclass(frozen=True)
class DrillDetail(DrillSummary):
    """A drill with everything it recorded; commands in the order they ran."""

    repository: str
    target_kind: str
    files_in_snapshot: int | None
    bytes_in_snapshot: int | None
    files_changed_since_snapshot: int | None
    restore_s: float | None
    estimated_full_restore_s: float | None
    canaries_checked: int | None
    sample_budget_limited: bool | None
    manifest_sha256: str | None
    subset: str | None  # integrity runs: the part "n/t" read by `restic check --read-data-subset`
    restic_version: str
    host: str
    preuve_version: str
    findings: tuple[Finding, ...]
    commands: tuple[CommandLog, ...]


@dataclass(frozen=True)
class SnapshotRecord:
    """A snapshot as Preuve has seen it in a target's repository."""

    snapshot: Snapshot
    first_seen_at: datetime
    last_seen_at: datetime
    gone_at: datetime | None
    size_bytes: int | None = None  # restore size, once a probe measured it (record_snapshot_stats)
    file_count: int | None = None
    changed_files: int | None = None  # against the previous snapshot; None for the first one
    stats_at: datetime | None = None  # when measured; None: not yet


# ----------------------------------------------------------------------------------------- clients, targets


def _dialect_insert(session: Session, table: Table) -> Insert:
    """INSERT that skips rows already present, so two processes syncing at once do not collide."""
    name = session.get_bind().dialect.name
    # each dialect's module is imported when used: loading PostgreSQL's costs every SQLite command start-up time
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table)  # pragma: no cover - only SQLite and PostgreSQL are supported


def sync_config(store: Store, config: Config) -> None:
    """Make the client and target rows match the configuration.

    New clients and targets are added, changed ones updated; targets no longer configured get ``removed_at``
    (their history stays), and a target configured again clears it. Clients are never removed: their
    targets' rows say what is still watched.
    """
    now = _now()
    refs = config.targets()
    with store.session(write=True) as session:
        connection = session.connection()
        if config.clients:
            connection.execute(
                _dialect_insert(session, _CLIENT),
                [
                    {
                        "id": client.id,
                        "name": client.name,
                        "language": client.job.language,
                        "policy": client.job.policy,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for client in config.clients.values()
                ],
            )
        for client_row in session.exec(select(Client).where(col(Client.id).in_(list(config.clients)))).all():
            job = config.clients[client_row.id].job
            wanted = {"name": job.client, "language": job.language, "policy": job.policy}
            if _assign(client_row, wanted):
                client_row.updated_at = now

        wanted_targets = {
            target.ref: {
                "client_id": target.client.id,
                "name": target.name,
                "kind": target.spec.kind,
                "location": target.spec.location,
                "media": target.spec.media,
                "repository": repository_display(target.spec),
                "source": target.spec.source,
            }
            for target in refs
        }
        if wanted_targets:
            connection.execute(
                _dialect_insert(session, _TARGET),
                [
                    {"ref": ref, **values, "created_at": now, "updated_at": now, "removed_at": None}
                    for ref, values in wanted_targets.items()
                ],
            )
        for row in session.exec(select(Target)).all():
            values = wanted_targets.get(row.ref)
            if values is None:
                if row.removed_at is None:
                    row.removed_at = now
                    row.updated_at = now
                continue
            changed = _assign(row, values)
            if row.removed_at is not None:
                row.removed_at = None
                changed = True
            if changed:
                row.updated_at = now


def _assign(row: Client | Target, values: Mapping[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    return changed


def target_row(session: Session, ref: str) -> Target:
    """The target row for "client/target"; LookupError if the store has never seen it."""
    row = session.exec(select(Target).where(col(Target.ref) == ref)).one_or_none()
    if row is None:
        if "/" not in ref:
            raise LookupError(f"{ref!r}: name a target as CLIENT/TARGET, for example acme/nas")
        raise LookupError(
            f"unknown target {ref!r}: the results database has no such target; check the name, or that the "
            "configuration was loaded (sync_config) since the target was added"
        )
    return row


def _target_id(row: Target) -> int:
    if row.id is None:  # pragma: no cover - rows read from the database always have an id
        raise RuntimeError(f"target {row.ref} has no id")
    return row.id


# --------------------------------------------------------------------------------------------------- drills


def create_drill(
    store: Store,
    ref: str,
    kind: DrillKind,
    requested_by: str,
    status: DrillStatus = DrillStatus.RUNNING,
    options: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> int:
    """A new drill row; a ``running`` drill belongs to this process at once, a ``queued`` one waits for
    :func:`claim_drill` (not before ``not_before``, when given). Returns its id."""
    kind = DrillKind(kind)
    status = DrillStatus(status)
    if status not in (DrillStatus.QUEUED, DrillStatus.RUNNING):
        raise ValueError(f"a drill starts queued or running, not {status.value}")
    if not_before is not None and status is not DrillStatus.QUEUED:
        raise ValueError("only a queued drill waits for not_before")
    if not_before is not None and (not_before.tzinfo is None or not_before.utcoffset() is None):
        raise ValueError("not_before must be an aware datetime")
    now = _now()
    running = status is DrillStatus.RUNNING
    with store.session(write=True) as session:
        target = target_row(session, ref)
        if target.removed_at is not None:
            raise LookupError(
                f"target {ref!r} was removed from the configuration on "
                f"{target.removed_at:%Y-%m-%d %H:%M} UTC; add it back to its job file to drill it"
            )
        run = DrillRun(
            target_id=_target_id(target),
            kind=kind.value,
            status=status.value,
            requested_by=requested_by,
            requested_at=now,
            started_at=now if running else None,
            worker=worker_id() if running else None,
            host=socket.gethostname() if running else "",
            preuve_version=preuve.__version__,
            options=_json(options or {}),
            not_before=not_before,
        )
        session.add(run)
        session.flush()
        if run.id is None:  # pragma: no cover - flush assigns the id
            raise RuntimeError("the database did not assign a drill id")
        return run.id


def claim_drill(store: Store, drill_id: int, worker: str) -> bool:
    """Take a queued drill for ``worker``; True only for the one caller whose UPDATE changed the row.

    The status test is in the UPDATE itself, so two workers racing for the same drill cannot both win
    (PostgreSQL re-checks the condition after waiting for the row lock; SQLite serialises writers).
    """
    statement = (
        update(_DRILL)
        .where(_DRILL.c.id == drill_id, _DRILL.c.status == DrillStatus.QUEUED.value)
        .values(
            status=DrillStatus.RUNNING.value,
            started_at=_now(),
            worker=worker,
            host=socket.gethostname(),
            preuve_version=preuve.__version__,
        )
    )
    with store.connection(write=True) as connection:
        return connection.execute(statement).rowcount == 1


def finish_drill(store: Store, drill_id: int, result: DrillResult) -> None:
    """Record a drill's outcome, findings and commands in one transaction, with its ledger entry.

    Commands already stored while the drill ran (the live restore log) are completed, not stored twice.

    ValueError if the result is not final, its kind differs from the drill's, or the drill already has a final
    status (results are append-only); LookupError if there is no such drill.
    """
    status = DrillStatus(result.status)
    if not status.final:
        raise ValueError(f"finish_drill needs a final status, not {status.value}")
    now = _now()
    with store.session(write=True) as session:
        connection = session.connection()
        # FOR UPDATE on PostgreSQL; SQLite's write session already holds the database write lock.
        row = connection.execute(
            _DRILL.select()
            .with_only_columns(_DRILL.c.status, _DRILL.c.kind, _DRILL.c.started_at)
            .where(_DRILL.c.id == drill_id)
            .with_for_update()
        ).one_or_none()
        if row is None:
            raise LookupError(f"no drill {drill_id} in the results database")
        if DrillStatus(row.status).final:
            raise ValueError(f"drill {drill_id} is already {row.status}: a finished drill is never rewritten")
        if row.kind != DrillKind(result.kind).value:
            raise ValueError(f"drill {drill_id} is a {row.kind} drill, the result is for a {result.kind} drill")

        finished_at = result.finished_at or now
        values: dict[str, Any] = {
            "status": status.value,
            "started_at": row.started_at or result.started_at or finished_at,
            "finished_at": finished_at,
            "failure_class": FailureClass(result.failure_class).value if result.failure_class else None,
            "message": redact.mask(result.message),
            "snapshot_id": result.snapshot_id,
            "snapshot_time": result.snapshot_time,
            "files_in_snapshot": result.files_in_snapshot,
            "bytes_in_snapshot": result.bytes_in_snapshot,
            "files_checked": result.files_checked,
            "files_changed_since_snapshot": result.files_changed_since_snapshot,
            "bytes_restored": result.bytes_restored,
            "restore_s": result.restore_s,
            "duration_s": result.duration_s,
            "estimated_full_restore_s": result.estimated_full_restore_s,
            "canaries_checked": result.canaries_checked,
            "sample_budget_limited": result.sample_budget_limited,
            "manifest_sha256": result.manifest_sha256 or None,
            "subset": result.subset,
        }
        # Keep what was recorded at the start unless the result knows better.
        for key in ("restic_version", "host", "preuve_version"):
            if getattr(result, key):
                values[key] = getattr(result, key)
        changed = connection.execute(
            update(_DRILL).where(_DRILL.c.id == drill_id, _DRILL.c.status.in_(_ACTIVE)).values(**values)
        ).rowcount
        if changed != 1:  # pragma: no cover - the row is locked above
            raise ValueError(f"drill {drill_id} changed while its result was being written")

        if result.findings:
            connection.execute(
                insert(_FINDING),
                [
                    {
                        "drill_id": drill_id,
                        "path": finding.path,
                        "failure_class": FailureClass(finding.failure_class).value,
                        "detail": redact.mask(finding.detail),
                    }
                    for finding in result.findings
                ],
            )
        # The live restore log (preuve.drills.live) may have stored some of these commands already, under the same
        # seq: complete those rows, add the others; a command still shown as running was stopped with the drill.
        save_commands(connection, drill_id, [(index, command) for index, command in enumerate(result.log, start=1)])
        close_running(connection, [drill_id])
        ledger.record_drill(connection, drill_id)


def mark_interrupted(store: Store, drill_ids: Iterable[int], message: str = INTERRUPTED_MESSAGE) -> int:
    """Close drills that will never finish (their worker died); final drills are left alone.

    Returns how many drills were marked.
    """
    ids = sorted(set(drill_ids))
    if not ids:
        return 0
    with store.connection(write=True) as connection:
        # FOR UPDATE on PostgreSQL: the drills marked here are the ones recorded in the ledger.
        marked = [
            int(drill_id)
            for (drill_id,) in connection.execute(
                _DRILL.select()
                .with_only_columns(_DRILL.c.id)
                .where(_DRILL.c.id.in_(ids), _DRILL.c.status.in_(_ACTIVE))
                .order_by(_DRILL.c.id)
                .with_for_update()
            )
        ]
        if not marked:
            return 0
        connection.execute(
            update(_DRILL)
            .where(_DRILL.c.id.in_(marked), _DRILL.c.status.in_(_ACTIVE))
            .values(status=DrillStatus.INTERRUPTED.value, finished_at=_now(), message=message)
        )
        close_running(connection, marked, WORKER_GONE_NOTE)
        for drill_id in marked:
            ledger.record_drill(connection, drill_id)
        return len(marked)


RETRY_PREFIX = "retry of #"


def interrupt_and_retry(store: Store, drill_id: int, message: str = INTERRUPTED_MESSAGE) -> tuple[bool, int | None]:
    """Close a drill whose worker died and queue one retry of it, in one transaction.

    Returns (marked, retry id). Only the caller whose UPDATE changed the row queues the retry, so two daemons
    recovering at once cannot retry a drill twice; a drill that was itself a retry is not retried again (a drill
    that kills its worker every time must not loop forever). The retry asks for the same kind and options.
    """
    with store.connection(write=True) as connection:
        row = connection.execute(
            _DRILL.select()
            .with_only_columns(_DRILL.c.target_id, _DRILL.c.kind, _DRILL.c.requested_by, _DRILL.c.options)
            .where(_DRILL.c.id == drill_id)
        ).one_or_none()
        if row is None:
            return False, None
        changed = connection.execute(
            update(_DRILL)
            .where(_DRILL.c.id == drill_id, _DRILL.c.status.in_(_ACTIVE))
            .values(status=DrillStatus.INTERRUPTED.value, finished_at=_now(), message=message)
        ).rowcount
        if changed != 1:
            return False, None
        close_running(connection, [drill_id], WORKER_GONE_NOTE)
        ledger.record_drill(connection, drill_id)
        if str(row.requested_by).startswith(RETRY_PREFIX):
            return True, None
        inserted = connection.execute(
            insert(_DRILL).values(
                target_id=row.target_id,
                kind=row.kind,
                status=DrillStatus.QUEUED.value,
                requested_by=f"{RETRY_PREFIX}{drill_id}",
                requested_at=_now(),
                message="",
                restic_version="",
                host="",
                preuve_version=preuve.__version__,
                options=row.options,
            )
        )
        key = inserted.inserted_primary_key
        return True, int(key[0]) if key else None


@dataclass(frozen=True)
class ActiveDrill:
    """A drill waiting in the queue or running: what the dispatcher and crash recovery decide on."""

    id: int
    target: str  # "client/target"
    kind: DrillKind
    status: DrillStatus
    requested_by: str
    requested_at: datetime
    not_before: datetime | None
    started_at: datetime | None
    worker: str | None
    options: dict[str, Any]


def active_drills(
    store: Store, status: DrillStatus, *, due_at: datetime | None = None, target: str | None = None
) -> list[ActiveDrill]:
    """Drills in ``status`` (queued or running), oldest request first; only those of ``target`` if given.

    With ``due_at``, only those whose ``not_before`` has passed by then (queued drills the dispatcher may claim).
    """
    status = DrillStatus(status)
    if status not in (DrillStatus.QUEUED, DrillStatus.RUNNING):
        raise ValueError(f"active drills are queued or running, not {status.value}")
    statement = (
        select(DrillRun, Target)
        .join(Target, col(DrillRun.target_id) == col(Target.id))
        .where(col(DrillRun.status) == status.value)
    )
    if target is not None:
        statement = statement.where(col(Target.ref) == target)
    if due_at is not None:
        if due_at.tzinfo is None or due_at.utcoffset() is None:
            raise ValueError("due_at must be an aware datetime")
        statement = statement.where((col(DrillRun.not_before).is_(None)) | (col(DrillRun.not_before) <= due_at))
    statement = statement.order_by(col(DrillRun.requested_at), col(DrillRun.id))
    with store.session() as session:
        return [
            ActiveDrill(
                id=_drill_id(run),
                target=row.ref,
                kind=DrillKind(run.kind),
                status=DrillStatus(run.status),
                requested_by=run.requested_by,
                requested_at=run.requested_at,
                not_before=run.not_before,
                started_at=run.started_at,
                worker=run.worker,
                options=_options(run),
            )
            for run, row in session.exec(statement).all()
        ]


def _drill_id(run: DrillRun) -> int:
    if run.id is None:  # pragma: no cover - rows read from the database always have an id
        raise RuntimeError("drill row without id")
    return run.id


def list_drills(
    store: Store,
    client: str | None = None,
    target: str | None = None,
    status: DrillStatus | str | None = None,
    limit: int | None = 50,
    kind: DrillKind | str | None = None,
) -> list[DrillSummary]:
    """Drills, newest request first. ``target`` is "client/target", or a target name (all clients, or the
    one given in ``client``)."""
    statement = select(DrillRun, Target).join(Target, col(DrillRun.target_id) == col(Target.id))
    if client is not None:
        statement = statement.where(col(Target.client_id) == client)
    if target is not None:
        if "/" in target:
            statement = statement.where(col(Target.ref) == target)
        else:
            statement = statement.where(col(Target.name) == target)
    if status is not None:
        statement = statement.where(col(DrillRun.status) == DrillStatus(status).value)
    if kind is not None:
        statement = statement.where(col(DrillRun.kind) == DrillKind(kind).value)
    statement = statement.order_by(col(DrillRun.requested_at).desc(), col(DrillRun.id).desc())
    if limit is not None:
        statement = statement.limit(limit)
    with store.session() as session:
        return [_summary(run, row) for run, row in session.exec(statement).all()]


def get_drill(store: Store, drill_id: int) -> DrillDetail | None:
    with store.session() as session:
        pair = session.exec(
            select(DrillRun, Target)
            .join(Target, col(DrillRun.target_id) == col(Target.id))
            .where(col(DrillRun.id) == drill_id)
        ).one_or_none()
        if pair is None:
            return None
        run, row = pair
        findings = session.connection().execute(
            _FINDING.select().where(_FINDING.c.drill_id == drill_id).order_by(_FINDING.c.id)
        )
        commands = session.connection().execute(
            _COMMAND.select().where(_COMMAND.c.drill_id == drill_id).order_by(_COMMAND.c.seq)
        )
        summary = _summary(run, row)
        return DrillDetail(
            **{name: getattr(summary, name) for name in DrillSummary.__dataclass_fields__},
            repository=row.repository,
            target_kind=row.kind,
            files_in_snapshot=run.files_in_snapshot,
            bytes_in_snapshot=run.bytes_in_snapshot,
            files_changed_since_snapshot=run.files_changed_since_snapshot,
            restore_s=run.restore_s,
            estimated_full_restore_s=run.estimated_full_restore_s,
            canaries_checked=run.canaries_checked,
            sample_budget_limited=run.sample_budget_limited,
            manifest_sha256=run.manifest_sha256,
            subset=run.subset,
            restic_version=run.restic_version,
            host=run.host,
            preuve_version=run.preuve_version,
            findings=tuple(
                Finding(path=f.path, failure_class=FailureClass(f.failure_class), detail=f.detail) for f in findings
            ),
            commands=tuple(
                CommandLog(
                    argv=tuple(json.loads(c.argv)),
                    started_at=c.started_at,
                    duration_s=c.duration_s,
                    exit_code=c.exit_code,
                    stdout=c.stdout,
                    stderr=c.stderr,
                    timed_out=c.timed_out,
                    note=c.note,
                    running=c.running,
                )
                for c in commands
            ),
        )


def _options(run: DrillRun) -> dict[str, Any]:
    value = json.loads(run.options) if run.options else {}
    return dict(value) if isinstance(value, dict) else {}


def _summary(run: DrillRun, target: Target) -> DrillSummary:
    if run.id is None:  # pragma: no cover - rows read from the database always have an id
        raise RuntimeError("drill row without id")
    return DrillSummary(
        id=run.id,
        target=target.ref,
        client=target.client_id,
        kind=DrillKind(run.kind),
        status=DrillStatus(run.status),
        requested_by=run.requested_by,
        requested_at=run.requested_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        failure_class=FailureClass(run.failure_class) if run.failure_class else None,
        message=run.message,
        snapshot_id=run.snapshot_id,
        snapshot_time=run.snapshot_time,
        files_checked=run.files_checked,
        bytes_restored=run.bytes_restored,
        duration_s=run.duration_s,
        worker=run.worker,
        options=_options(run),
    )


# ------------------------------------------------------------------------------------- probes and snapshots


def record_probe(store: Store, ref: str, probe: ProbeResult, *, with_snapshots: bool = True) -> int:
    """Store a probe; when it succeeded (and ``with_snapshots``), also the snapshot listing it made, as a
    complete listing taken at ``probe.finished_at``. Returns the probe's id."""
    newest = probe.newest
    with store.session(write=True) as session:
        target = target_row(session, ref)
        row = Probe(
            target_id=_target_id(target),
            started_at=probe.started_at,
            finished_at=probe.finished_at,
            ok=probe.ok,
            failure_class=FailureClass(probe.failure_class).value if probe.failure_class else None,
            message=redact.mask(probe.message),
            reachable=probe.reachable,
            credentials_ok=probe.credentials_ok,
            repository_opens=probe.repository_opens,
            repository_id=probe.repository_id,
            snapshot_count=len(probe.snapshots),
            newest_snapshot_id=newest.id if newest else None,
            newest_snapshot_time=newest.time if newest else None,
            restic_version=probe.restic_version,
            host=probe.host,
            preuve_version=probe.preuve_version,
            facts=_json(probe.facts),
        )
        session.add(row)
        session.flush()
        if row.id is None:  # pragma: no cover - flush assigns the id
            raise RuntimeError("the database did not assign a probe id")
        # A failed probe's empty list says nothing about the repository: it must not mark snapshots gone.
        if with_snapshots and probe.ok:
            _record_snapshots(session, target, probe.snapshots, probe.finished_at, complete=True)
        ledger.record_probe(session.connection(), row.id)
        return row.id


def record_snapshots(
    store: Store, ref: str, snapshots: Sequence[Snapshot], seen_at: datetime, complete: bool = True
) -> None:
    """Note the snapshots a listing showed at ``seen_at``.

    New snapshots are added, known ones get ``last_seen_at``; a snapshot marked gone that shows up again is no
    longer gone. With ``complete`` (the listing was the whole repository, not a filtered one), snapshots it
    does not show are marked ``gone_at=seen_at``. Listings recorded out of order do not undo newer ones.
    """
    if seen_at.tzinfo is None:
        raise ValueError("seen_at must be an aware datetime")
    with store.session(write=True) as session:
        _record_snapshots(session, target_row(session, ref), snapshots, seen_at, complete=complete)


def _record_snapshots(
    session: Session, target: Target, snapshots: Sequence[Snapshot], seen_at: datetime, *, complete: bool
) -> None:
    target_id = _target_id(target)
    listed = {snapshot.id: snapshot for snapshot in snapshots}
    if listed:
        session.connection().execute(
            _dialect_insert(session, _SNAPSHOT),
            [
                {
                    "target_id": target_id,
                    "snapshot_id": s.id,
                    "short_id": s.short_id,
                    "time": s.time,
                    "hostname": s.hostname,
                    "username": s.username,
                    "paths": _json(list(s.paths)),
                    "tags": _json(list(s.tags)),
                    "tree": s.tree,
                    "parent": s.parent,
                    "first_seen_at": seen_at,
                    "last_seen_at": seen_at,
                    "gone_at": None,
                }
                for s in listed.values()
            ],
        )
    for row in session.exec(select(SnapshotSeen).where(col(SnapshotSeen.target_id) == target_id)).all():
        if row.snapshot_id in listed:
            row.first_seen_at = min(row.first_seen_at, seen_at)
            row.last_seen_at = max(row.last_seen_at, seen_at)
            if row.gone_at is not None and row.gone_at <= seen_at:
                row.gone_at = None  # back again (e.g. a repository restored from a copy)
        elif complete and row.gone_at is None and row.last_seen_at < seen_at:
            row.gone_at = seen_at


def list_snapshots(store: Store, ref: str, *, include_gone: bool = True) -> list[SnapshotRecord]:
    """Snapshots seen in a target's repository, oldest snapshot first."""
    with store.session() as session:
        target = target_row(session, ref)
        statement = select(SnapshotSeen).where(col(SnapshotSeen.target_id) == _target_id(target))
        if not include_gone:
            statement = statement.where(col(SnapshotSeen.gone_at).is_(None))
        rows = session.exec(statement.order_by(col(SnapshotSeen.time), col(SnapshotSeen.id))).all()
        return [
            SnapshotRecord(
                snapshot=Snapshot(
                    id=row.snapshot_id,
                    short_id=row.short_id,
                    time=row.time,
                    paths=tuple(json.loads(row.paths)),
                    hostname=row.hostname,
                    username=row.username,
                    tags=tuple(json.loads(row.tags)),
                    tree=row.tree,
                    parent=row.parent,
                ),
                first_seen_at=row.first_seen_at,
                last_seen_at=row.last_seen_at,
                gone_at=row.gone_at,
                size_bytes=row.size_bytes,
                file_count=row.file_count,
                changed_files=row.changed_files,
                stats_at=row.stats_at,
            )
            for row in rows
        ]


def record_snapshot_stats(
    store: Store,
    ref: str,
    snapshot_id: str,
    *,
    size_bytes: int | None,
    file_count: int | None,
    changed_files: int | None,
    at: datetime,
) -> bool:
    """Note what a probe measured of one snapshot (``restic stats`` and ``restic diff``), taken at ``at``.

    A later measurement replaces an earlier one. Returns False when the store has no such snapshot for the
    target (it is recorded by the listing, :func:`record_probe`, first); LookupError for an unknown target.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be an aware datetime")
    with store.session(write=True) as session:
        target_id = _target_id(target_row(session, ref))
        changed = (
            session.connection()
            .execute(
                update(_SNAPSHOT)
                .where(_SNAPSHOT.c.target_id == target_id, _SNAPSHOT.c.snapshot_id == snapshot_id)
                .values(size_bytes=size_bytes, file_count=file_count, changed_files=changed_files, stats_at=at)
            )
            .rowcount
        )
        return changed == 1


def snapshots_without_stats(store: Store, ref: str, limit: int) -> list[str]:
    """Ids of the target's snapshots still in the repository that no probe has measured yet, newest first."""
    with store.session() as session:
        target_id = _target_id(target_row(session, ref))
        rows = session.connection().execute(
            select(_SNAPSHOT.c.snapshot_id)
            .where(
                _SNAPSHOT.c.target_id == target_id,
                _SNAPSHOT.c.gone_at.is_(None),
                _SNAPSHOT.c.stats_at.is_(None),
            )
            .order_by(_SNAPSHOT.c.time.desc(), _SNAPSHOT.c.id.desc())
            .limit(limit)
        )
        return [str(snapshot_id) for (snapshot_id,) in rows]
