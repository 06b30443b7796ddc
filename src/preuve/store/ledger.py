"""The ledger: every recorded result appended to its client's hash chain, so that edits show.

Each client has one chain of :class:`~preuve.store.models.LedgerEntry` rows, ``seq`` 1, 2, 3... Each entry holds
the hash of the entry before it (``prev_hash``, 64 zeros for seq 1) and its own ``entry_hash``: the hex SHA-256 of
the canonical JSON of ``{"client", "seq", "kind", "recorded_at", "payload", "prev_hash"}``.

Canonical JSON (:func:`canonical`): keys sorted, separators ``,`` and ``:`` (no white space), ``ensure_ascii=False``,
encoded in UTF-8; no floats anywhere. Times are integers: microseconds since 1970-01-01T00:00:00Z (UTC); durations
are integer milliseconds (keys ending in ``_ms``); sizes are integer bytes. The payload names its source row under
``"ref"`` (``{"table": "drillrun", "id": 12}``, or null), so the hash covers it too.

Entries are appended in the same transaction as the result they record (:func:`append`), under a per-client lock
(SQLite: the write transaction's BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock on the client,
which also covers a client's very first entry, where a FOR UPDATE of the head would lock nothing), so a chain
never forks. Entries are never updated.

:func:`verify` walks the chains, recomputes every hash and cross-checks the source rows (an edited drill status is
caught); :func:`export_month` writes a month's slice as JSON Lines with the head that precedes it, and
:func:`verify_export` checks such a slice offline, without a database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, insert, or_, select, text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from preuve.store.db import Store
from preuve.store.models import LedgerEntry, metadata

GENESIS = "0" * 64
KINDS = ("drill", "integrity", "probe", "policy", "note")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
# pg_advisory_xact_lock(key, hashtext(client)): one appender per client at a time.
_LEDGER_LOCK_KEY = 0x70726C67  # "prlg"
_CHUNK = 500  # ids per IN (...) when cross-checking sources

_LEDGER: Table = metadata.tables["ledgerentry"]
_DRILL: Table = metadata.tables["drillrun"]
_FINDING: Table = metadata.tables["drillfinding"]
_TARGET: Table = metadata.tables["target"]
_PROBE: Table = metadata.tables["probe"]
_FLIP: Table = metadata.tables["flip"]
_CLIENT: Table = metadata.tables["client"]

_FINAL_DRILL = ("passed", "failed", "error", "interrupted")


# ------------------------------------------------------------------------------------------ canonical form


def _no_floats(value: Any, where: str = "payload") -> None:
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return
    if isinstance(value, float):
        raise TypeError(f"{where} is a float ({value!r}): the ledger holds integers (ms, bytes, us) only")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-string key {key!r}")
            _no_floats(item, f"{where}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _no_floats(item, f"{where}[{index}]")
        return
    raise TypeError(f"{where} is a {type(value).__name__}: only JSON values (no floats) go into the ledger")


def canonical(value: Any) -> bytes:
    """The canonical JSON of ``value``: sorted keys, no white space, UTF-8, no floats (TypeError)."""
    _no_floats(value, "value")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def micros(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (UTC)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} refused")
    return (moment - _EPOCH) // _US


def from_micros(value: int) -> datetime:
    return _EPOCH + value * _US


def _opt_micros(moment: datetime | None) -> int | None:
    return micros(moment) if moment is not None else None


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def integral(value: Any) -> Any:
    """JSON read from a source row, made ledger-safe: an integral float becomes an int, any other its repr."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else repr(value)
    if isinstance(value, dict):
        return {str(k): integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def entry_document(
    client: str, seq: int, kind: str, recorded_at: int, payload: Mapping[str, Any], prev_hash: str
) -> dict[str, Any]:
    """What an entry's hash covers; ``recorded_at`` in integer microseconds."""
    return {
        "client": client,
        "seq": seq,
        "kind": kind,
        "recorded_at": recorded_at,
        "payload": dict(payload),
        "prev_hash": prev_hash,
    }


def entry_hash(client: str, seq: int, kind: str, recorded_at: int, payload: Mapping[str, Any], prev_hash: str) -> str:
    document = entry_document(client, seq, kind, recorded_at, payload, prev_hash)
    return hashlib.sha256(canonical(document)).hexdigest()


# ----------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class LedgerProblem:
    """The first thing wrong with a client's chain (or an export): which entry, and how."""

    client: str
    seq: int | None  # the entry named; None when the problem is not one entry (an unreadable export line)
    what: str  # edited | removed | reordered | forged | source-changed | source-missing | unrecorded | malformed
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class LedgerHead:
    """The end of a chain (or of a slice of it): seq 0 and 64 zeros before the first entry."""

    client: str
    seq: int
    entry_hash: str


# ------------------------------------------------------------------------------------------------ append


def _lock(connection: Connection, client_id: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key, hashtext(:client))"),
            {"key": _LEDGER_LOCK_KEY, "client": client_id},
        )
    # SQLite: writers call this inside Store.session(write=True)/connection(write=True), which BEGIN IMMEDIATE.


def _head_row(connection: Connection, client_id: str) -> Any:
    return connection.execute(
        select(_LEDGER.c.seq, _LEDGER.c.entry_hash, _LEDGER.c.recorded_at)
        .where(_LEDGER.c.client_id == client_id)
        .order_by(_LEDGER.c.seq.desc())
        .limit(1)
    ).one_or_none()


def append(
    target: Store | Session | Connection,
    client_id: str,
    kind: str,
    payload: Mapping[str, Any],
    ref: tuple[str, int] | None = None,
    *,
    at: datetime | None = None,
) -> LedgerEntry:
    """Append an entry to ``client_id``'s chain, in the caller's transaction when given a session or connection
    (a Store opens a write transaction of its own). ``ref`` names the source row (table, id); it is stored in the
    payload under ``"ref"``. TypeError for a payload that is not canonical-JSON-safe (floats, objects).
    """
    if isinstance(target, Store):
        with target.session(write=True) as session:
            return append(session, client_id, kind, payload, ref, at=at)
    connection = target.connection() if isinstance(target, Session) else target
    if not client_id:
        raise ValueError("a ledger entry needs a client")
    if not kind:
        raise ValueError("a ledger entry needs a kind")
    body = {str(k): v for k, v in payload.items() if k != "ref"}
    body["ref"] = {"table": ref[0], "id": int(ref[1])} if ref else None
    _no_floats(body)
    _lock(connection, client_id)
    head = _head_row(connection, client_id)
    now = at or datetime.now(UTC)
    if head is not None and head.recorded_at > now:
        now = head.recorded_at  # a chain's times never go backwards, so a month's entries are one slice
    seq = head.seq + 1 if head is not None else 1
    prev = head.entry_hash if head is not None else GENESIS
    recorded_us = micros(now)
    recorded_at = from_micros(recorded_us)
    digest = entry_hash(client_id, seq, kind, recorded_us, body, prev)
    values = {
        "client_id": client_id,
        "seq": seq,
        "kind": kind,
        "ref_table": ref[0] if ref else None,
        "ref_id": int(ref[1]) if ref else None,
        "recorded_at": recorded_at,
        "payload": canonical(body).decode(),
        "prev_hash": prev,
        "entry_hash": digest,
    }
    inserted = connection.execute(insert(_LEDGER).values(**values))
    key = inserted.inserted_primary_key
    return LedgerEntry(
        id=int(key[0]) if key else None,
        client_id=client_id,
        seq=seq,
        kind=kind,
        ref_table=ref[0] if ref else None,
        ref_id=int(ref[1]) if ref else None,
        recorded_at=recorded_at,
        payload=str(values["payload"]),
        prev_hash=prev,
        entry_hash=digest,
    )


# ------------------------------------------------------------------------------------------ source payloads


def _drill_kind(kind: str) -> str:
    return "integrity" if kind == "integrity" else "drill"


def _findings_summary(rows: Sequence[Row[Any]]) -> dict[str, Any]:
    by_class: dict[str, int] = {}
    for row in rows:
        by_class[row.failure_class] = by_class.get(row.failure_class, 0) + 1
    listing = [[row.path, row.failure_class, row.detail] for row in rows]
    return {"count": len(rows), "by_class": by_class, "sha256": hashlib.sha256(canonical(listing)).hexdigest()}


def _drill_payload(run: Row[Any], target_ref: str, findings: Sequence[Row[Any]]) -> dict[str, Any]:
    return {
        "drill": run.id,
        "target": target_ref,
        "drill_kind": run.kind,
        "status": run.status,
        "failure_class": run.failure_class,
        "message": run.message,
        "requested_by": run.requested_by,
        "requested_at": _opt_micros(run.requested_at),
        "started_at": _opt_micros(run.started_at),
        "finished_at": _opt_micros(run.finished_at),
        "snapshot_id": run.snapshot_id,
        "snapshot_time": _opt_micros(run.snapshot_time),
        "files_in_snapshot": run.files_in_snapshot,
        "bytes_in_snapshot": run.bytes_in_snapshot,
        "files_checked": run.files_checked,
        "files_changed_since_snapshot": run.files_changed_since_snapshot,
        "bytes_restored": run.bytes_restored,
        "restore_ms": _ms(run.restore_s),
        "duration_ms": _ms(run.duration_s),
        "estimated_full_restore_ms": _ms(run.estimated_full_restore_s),
        "canaries_checked": run.canaries_checked,
        "sample_budget_limited": run.sample_budget_limited,
        "manifest_sha256": run.manifest_sha256,
        "subset": run.subset,
        "restic_version": run.restic_version,
        "host": run.host,
        "preuve_version": run.preuve_version,
        "findings": _findings_summary(findings),
    }


def probe_payload(probe: Row[Any], target_ref: str) -> dict[str, Any]:
    try:
        facts = integral(json.loads(probe.facts)) if probe.facts else {}
    except ValueError:
        facts = {"unreadable": probe.facts}
    return {
        "probe": probe.id,
        "target": target_ref,
        "ok": probe.ok,
        "failure_class": probe.failure_class,
        "message": probe.message,
        "started_at": micros(probe.started_at),
        "finished_at": micros(probe.finished_at),
        "reachable": probe.reachable,
        "credentials_ok": probe.credentials_ok,
        "repository_opens": probe.repository_opens,
        "repository_id": probe.repository_id,
        "snapshot_count": probe.snapshot_count,
        "newest_snapshot_id": probe.newest_snapshot_id,
        "newest_snapshot_time": _opt_micros(probe.newest_snapshot_time),
        "restic_version": probe.restic_version,
        "host": probe.host,
        "facts": facts,
    }


def _flip_payload(flip: Row[Any]) -> dict[str, Any]:
    try:
        details = json.loads(flip.details) if flip.details else {}
    except ValueError:
        details = {}
    if not isinstance(details, dict):
        details = {}
    parts = str(flip.subject).split(":", 3)
    rule = details.get("rule") if isinstance(details.get("rule"), str) else (parts[2] if len(parts) > 2 else "")
    references = details.get("references")
    return {
        "flip": flip.id,
        "subject": flip.subject,
        "rule": rule,
        "target": flip.target_ref,
        "old_verdict": flip.old_state,
        "new_verdict": flip.new_state,
        "at": micros(flip.at),
        "summary": flip.summary,
        "policy": details.get("policy") if isinstance(details.get("policy"), str) else None,
        "references": [str(r) for r in references] if isinstance(references, list) else [],
        "reason": details.get("reason") if isinstance(details.get("reason"), str) else None,
    }


def chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _drill_sources(connection: Connection, ids: Iterable[int]) -> dict[int, tuple[str, str, dict[str, Any]]]:
    """Drill id -> (client, ledger kind, payload) for final drills; drills not final are left out."""
    found: dict[int, tuple[str, str, dict[str, Any]]] = {}
    for chunk in chunks(ids):
        runs = connection.execute(
            select(_DRILL, _TARGET.c.ref, _TARGET.c.client_id)
            .join(_TARGET, _DRILL.c.target_id == _TARGET.c.id)
            .where(_DRILL.c.id.in_(chunk))
        ).all()
        findings: dict[int, list[Row[Any]]] = {}
        for row in connection.execute(
            select(_FINDING).where(_FINDING.c.drill_id.in_(chunk)).order_by(_FINDING.c.id)
        ).all():
            findings.setdefault(row.drill_id, []).append(row)
        for run in runs:
            if run.status in _FINAL_DRILL:
                found[run.id] = (
                    run.client_id,
                    _drill_kind(run.kind),
                    _drill_payload(run, run.ref, findings.get(run.id, [])),
                )
    return found


def _probe_sources(connection: Connection, ids: Iterable[int]) -> dict[int, tuple[str, str, dict[str, Any]]]:
    found: dict[int, tuple[str, str, dict[str, Any]]] = {}
    for chunk in chunks(ids):
        rows = connection.execute(
            select(_PROBE, _TARGET.c.ref, _TARGET.c.client_id)
            .join(_TARGET, _PROBE.c.target_id == _TARGET.c.id)
            .where(_PROBE.c.id.in_(chunk))
        ).all()
        for row in rows:
            found[row.id] = (row.client_id, "probe", probe_payload(row, row.ref))
    return found


def _flip_sources(connection: Connection, ids: Iterable[int]) -> dict[int, tuple[str, str, dict[str, Any]]]:
    found: dict[int, tuple[str, str, dict[str, Any]]] = {}
    for chunk in chunks(ids):
        for row in connection.execute(select(_FLIP).where(_FLIP.c.id.in_(chunk))).all():
            found[row.id] = (row.client_id, "policy", _flip_payload(row))
    return found


SOURCES = {"drillrun": _drill_sources, "probe": _probe_sources, "flip": _flip_sources}


def _record(connection: Connection, table: str, row_id: int, what: str) -> LedgerEntry:
    """Append the row as it now reads, in the caller's transaction (the source readers also serve verify)."""
    source = SOURCES[table](connection, [row_id]).get(row_id)
    if source is None:
        raise LookupError(f"no {what} {row_id} to record in the ledger")
    client, kind, payload = source
    return append(connection, client, kind, payload, (table, row_id))


def record_drill(connection: Connection, drill_id: int) -> LedgerEntry:
    """A final drill (or integrity run)."""
    return _record(connection, "drillrun", drill_id, "final drill")


def record_probe(connection: Connection, probe_id: int) -> LedgerEntry:
    """A probe."""
    return _record(connection, "probe", probe_id, "probe")


def record_policy_flip(connection: Connection, flip_id: int) -> LedgerEntry:
    """A policy verdict change (a flip of kind "rule")."""
    return _record(connection, "flip", flip_id, "flip")


def record_bulk(connection: Connection, items: Sequence[tuple[str, int, datetime]]) -> int:
    """Append many source rows at once: ``(table, id, recorded_at)`` in the order given, each entry exactly what
    :func:`record_drill`, :func:`record_probe` or :func:`record_policy_flip` would append at ``recorded_at``.

    For imports and benchmarks of years of history: sources are read in chunks and entries inserted in batches
    instead of one statement per row. The caller's transaction holds every client's lock, as :func:`append` does.
    Returns the number of entries appended; LookupError for a row that is not there (or not final).
    """
    wanted: dict[str, set[int]] = {}
    for table, row_id, _ in items:
        if table not in SOURCES:
            raise ValueError(f"the ledger records drillrun, probe and flip rows, not {table!r}")
        wanted.setdefault(table, set()).add(int(row_id))
    sources = {table: SOURCES[table](connection, ids) for table, ids in wanted.items()}
    heads: dict[str, tuple[int, str, datetime]] = {}
    rows: list[dict[str, Any]] = []
    for table, row_id, at in items:
        source = sources[table].get(int(row_id))
        if source is None:
            raise LookupError(f"no {table} {row_id} to record in the ledger (missing, or not final)")
        client, kind, payload = source
        if client not in heads:
            _lock(connection, client)
            head = _head_row(connection, client)
            heads[client] = (head.seq, head.entry_hash, head.recorded_at) if head else (0, GENESIS, at)
        seq, prev, last = heads[client]
        body = {str(k): v for k, v in payload.items() if k != "ref"}
        body["ref"] = {"table": table, "id": int(row_id)}
        _no_floats(body)
        recorded_us = micros(max(at, last))  # as append: a chain's times never go backwards
        recorded_at = from_micros(recorded_us)
        digest = entry_hash(client, seq + 1, kind, recorded_us, body, prev)
        rows.append(
            {
                "client_id": client,
                "seq": seq + 1,
                "kind": kind,
                "ref_table": table,
                "ref_id": int(row_id),
                "recorded_at": recorded_at,
                "payload": canonical(body).decode(),
                "prev_hash": prev,
                "entry_hash": digest,
            }
        )
        heads[client] = (seq + 1, digest, recorded_at)
    for start in range(0, len(rows), _CHUNK * 4):
        connection.execute(insert(_LEDGER), rows[start : start + _CHUNK * 4])
    return len(rows)


def add_note(store: Store, client_id: str, note: str, by: str, *, drill_id: int | None = None) -> LedgerEntry:
    """A technician's acknowledgement or note (kind "note"), about a drill of the client if ``drill_id``.

    LookupError for an unknown client or a drill that is not the client's.
    """
    if not note.strip():
        raise ValueError("the note is empty")
    with store.session(write=True) as session:
        connection = session.connection()
        if connection.execute(select(_CLIENT.c.id).where(_CLIENT.c.id == client_id)).one_or_none() is None:
            raise LookupError(f"unknown client {client_id!r}: the results database has no such client")
        if drill_id is not None:
            owner = connection.execute(
                select(_TARGET.c.client_id)
                .join(_DRILL, _DRILL.c.target_id == _TARGET.c.id)
                .where(_DRILL.c.id == drill_id)
            ).one_or_none()
            if owner is None or owner.client_id != client_id:
                raise LookupError(f"drill {drill_id} is not a drill of client {client_id!r}")
        now = datetime.now(UTC)
        payload = {"text": note, "by": by, "at": micros(now), "drill": drill_id}
        return append(connection, client_id, "note", payload, ("drillrun", drill_id) if drill_id else None, at=now)


# ------------------------------------------------------------------------------------------------ verify


def _payload_of(row: Row[Any]) -> dict[str, Any] | None:
    try:
        value = json.loads(row.payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _row_hash(row: Row[Any], seq: int, payload: Mapping[str, Any]) -> str:
    return entry_hash(row.client_id, seq, row.kind, micros(row.recorded_at), payload, row.prev_hash)


def _differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    keys = sorted(k for k in set(recorded) | set(now) if k != "ref" and recorded.get(k) != now.get(k))
    shown = [
        f"{k}: {json.dumps(recorded.get(k), ensure_ascii=False)} -> {json.dumps(now.get(k), ensure_ascii=False)}"
        for k in keys[:3]
    ]
    return "; ".join(shown) + (f"; and {len(keys) - 3} more" if len(keys) > 3 else "")


def _chain_problem(client: str, rows: Sequence[Row[Any]]) -> tuple[LedgerProblem | None, dict[int, dict[str, Any]]]:
    """The first break of a chain's hashes, links and numbering; and the payloads read, by seq."""
    payloads: dict[int, dict[str, Any]] = {}
    prev = GENESIS
    last_time: datetime | None = None
    for position, row in enumerate(rows, start=1):
        payload = _payload_of(row)
        if row.seq != position:
            if row.seq > position:
                return LedgerProblem(
                    client,
                    position,
                    "removed",
                    f"{client}: entry {position} was removed (the chain goes from {position - 1} to {row.seq})",
                ), payloads
            return LedgerProblem(client, row.seq, "reordered", f"{client}: entry {row.seq} appears twice"), payloads
        if payload is None or _row_hash(row, row.seq, payload) != row.entry_hash:
            if payload is not None:
                moved = next(
                    (
                        s
                        for s in range(1, len(rows) + 2)
                        if s != row.seq and _row_hash(row, s, payload) == row.entry_hash
                    ),
                    None,
                )
                if moved is not None:
                    return LedgerProblem(
                        client,
                        row.seq,
                        "reordered",
                        f"{client}: entry {row.seq} was reordered (it holds the entry recorded as seq {moved})",
                    ), payloads
            return LedgerProblem(
                client,
                row.seq,
                "edited",
                f"{client}: entry {row.seq} was edited (its content no longer matches its hash {row.entry_hash[:16]}…)",
            ), payloads
        if row.prev_hash != prev:
            return LedgerProblem(
                client,
                row.seq,
                "forged",
                f"{client}: entry {row.seq} does not follow entry {row.seq - 1} (prev_hash differs): an entry was "
                "removed, replaced or inserted before it",
            ), payloads
        if ref_of(payload) != (row.ref_table, row.ref_id):
            return LedgerProblem(
                client, row.seq, "edited", f"{client}: entry {row.seq} was edited (its source reference was changed)"
            ), payloads
        if last_time is not None and row.recorded_at < last_time:
            return LedgerProblem(
                client, row.seq, "reordered", f"{client}: entry {row.seq} is dated before entry {row.seq - 1}"
            ), payloads
        payloads[row.seq] = payload
        prev = row.entry_hash
        last_time = row.recorded_at
    return None, payloads


def ref_of(payload: Mapping[str, Any]) -> tuple[str | None, int | None]:
    ref = payload.get("ref")
    if isinstance(ref, dict):
        table, ident = ref.get("table"), ref.get("id")
        return (str(table) if table is not None else None, int(ident) if isinstance(ident, int) else None)
    return None, None


def _source_problem(
    connection: Connection, client: str, rows: Sequence[Row[Any]], payloads: Mapping[int, dict[str, Any]]
) -> LedgerProblem | None:
    """The first entry whose source row no longer says what the ledger recorded (or is gone, or is recorded twice)."""
    wanted: dict[str, set[int]] = {}
    for row in rows:
        if row.ref_table in SOURCES and row.ref_id is not None and row.kind != "note":
            wanted.setdefault(row.ref_table, set()).add(row.ref_id)
    sources = {table: SOURCES[table](connection, ids) for table, ids in wanted.items()}
    note_drills: set[int] = {r.ref_id for r in rows if r.kind == "note" and r.ref_id is not None}
    existing_drills: dict[int, str] = {}
    for chunk in chunks(note_drills):
        for found in connection.execute(
            select(_DRILL.c.id, _TARGET.c.client_id)
            .join(_TARGET, _DRILL.c.target_id == _TARGET.c.id)
            .where(_DRILL.c.id.in_(chunk))
        ).all():
            existing_drills[found.id] = found.client_id
    seen: dict[tuple[str, int], int] = {}
    for row in rows:
        payload = payloads[row.seq]
        if row.kind == "note":
            if row.ref_id is not None and existing_drills.get(row.ref_id) != client:
                return LedgerProblem(
                    client,
                    row.seq,
                    "source-missing",
                    f"{client}: entry {row.seq} is a note about drill {row.ref_id}, which is no longer in the database",
                )
            continue
        if row.ref_table not in SOURCES or row.ref_id is None:
            continue
        key = (row.ref_table, row.ref_id)
        if key in seen:
            return LedgerProblem(
                client,
                row.seq,
                "forged",
                f"{client}: entry {row.seq} records {row.ref_table} #{row.ref_id} again (already entry {seen[key]})",
            )
        seen[key] = row.seq
        source = sources[row.ref_table].get(row.ref_id)
        if source is None:
            return LedgerProblem(
                client,
                row.seq,
                "source-missing",
                f"{client}: entry {row.seq} records {row.ref_table} #{row.ref_id}, which is no longer in the database "
                "(or no longer final)",
            )
        owner, kind, now = source
        recorded = {k: v for k, v in payload.items() if k != "ref"}
        if owner != client or kind != row.kind or recorded != now:
            change = _differences(recorded, now) or f"client or kind: {client}/{row.kind} -> {owner}/{kind}"
            return LedgerProblem(
                client,
                row.seq,
                "source-changed",
                f"{client}: {row.ref_table} #{row.ref_id} no longer says what entry {row.seq} recorded ({change})",
            )
    return None


def unrecorded_problem(connection: Connection, client: str, rows: Sequence[Row[Any]]) -> LedgerProblem | None:
    """A result recorded since the chain began that has no entry: the chain's newest entries were removed.

    Every drill, probe and policy flip is appended to its client's chain in the transaction that records it, so
    any such row of this client recorded since the chain's first entry must have an entry; rows older than that
    entry predate the ledger (an upgrade) and are allowed. A row is known to be newer than the chain's start by its
    own time (a final drill's ``finished_at``, a probe's ``finished_at``, a flip's ``at``: each set as the result
    is recorded, so a row recorded before the ledger existed is dated before its first entry), and, for probes and
    flips, by its id too (ids grow as rows are inserted: one above an id the chain records is newer). Neither needs
    a remaining entry of the same kind, so deleting a chain's only probe (or flip) entry is caught as well.
    Drills are not judged by id: theirs is given when they are requested, not when they finish.
    """
    if not rows:
        return None
    since = rows[0].recorded_at
    head = rows[-1].seq
    refs: dict[str, set[int]] = {}
    for row in rows:
        if row.kind != "note" and row.ref_table is not None and row.ref_id is not None:
            refs.setdefault(row.ref_table, set()).add(row.ref_id)
    missing: list[tuple[str, int]] = []
    drills = refs.get("drillrun", set())
    found = connection.execute(
        select(_DRILL.c.id)
        .join(_TARGET, _DRILL.c.target_id == _TARGET.c.id)
        .where(_TARGET.c.client_id == client, _DRILL.c.status.in_(_FINAL_DRILL), _DRILL.c.finished_at >= since)
    )
    missing += [("drillrun", i) for (i,) in found if i not in drills]
    probes = refs.get("probe", set())
    newer = _PROBE.c.finished_at >= since
    found = connection.execute(
        select(_PROBE.c.id)
        .join(_TARGET, _PROBE.c.target_id == _TARGET.c.id)
        .where(_TARGET.c.client_id == client, or_(newer, _PROBE.c.id > min(probes)) if probes else newer)
    )
    missing += [("probe", i) for (i,) in found if i not in probes]
    flips = refs.get("flip", set())
    newer = _FLIP.c.at >= since
    found = connection.execute(
        select(_FLIP.c.id).where(
            _FLIP.c.client_id == client,
            _FLIP.c.kind == "rule",
            _FLIP.c.reminder.is_(False),
            or_(newer, _FLIP.c.id > min(flips)) if flips else newer,
        )
    )
    missing += [("flip", i) for (i,) in found if i not in flips]
    if not missing:
        return None
    table, ident = min(missing, key=lambda item: (item[1], item[0]))
    return LedgerProblem(
        client,
        head + 1,
        "removed",
        f"{client}: {table} #{ident} was recorded after the chain began but has no entry: entries after {head} "
        "were removed",
    )


def _clients(connection: Connection, client: str | None) -> list[str]:
    if client is not None:
        return [client]
    return [str(c) for (c,) in connection.execute(select(_LEDGER.c.client_id).distinct().order_by(_LEDGER.c.client_id))]


def _rows(connection: Connection, client: str) -> list[Row[Any]]:
    return list(
        connection.execute(
            select(_LEDGER).where(_LEDGER.c.client_id == client).order_by(_LEDGER.c.seq, _LEDGER.c.id)
        ).all()
    )


@dataclass(frozen=True)
class ChainStatus:
    """One client's chain as :func:`verify_chains` found it."""

    client: str
    entries: int
    head: LedgerHead
    problem: LedgerProblem | None


def verify_chains(store: Store, client: str | None = None) -> list[ChainStatus]:
    """Every client's chain (or ``client``'s), with its head and the first problem found, if any."""
    statuses: list[ChainStatus] = []
    with store.connection() as connection:
        for name in _clients(connection, client):
            rows = _rows(connection, name)
            problem, payloads = _chain_problem(name, rows)
            if problem is None:
                problem = _source_problem(connection, name, rows, payloads) or unrecorded_problem(
                    connection, name, rows
                )
            head = LedgerHead(name, rows[-1].seq, rows[-1].entry_hash) if rows else LedgerHead(name, 0, GENESIS)
            statuses.append(ChainStatus(name, len(rows), head, problem))
    return statuses


def verify(store: Store, client: str | None = None) -> list[LedgerProblem]:
    """The first problem of each client's chain (all clients, or ``client``); [] when every chain is intact."""
    return [s.problem for s in verify_chains(store, client) if s.problem is not None]


def head_at(store: Store, client: str, moment: datetime) -> LedgerHead:
    """The client's newest entry recorded before ``moment`` (seq 0 and 64 zeros if none)."""
    with store.connection() as connection:
        row = connection.execute(
            select(_LEDGER.c.seq, _LEDGER.c.entry_hash)
            .where(_LEDGER.c.client_id == client, _LEDGER.c.recorded_at < moment)
            .order_by(_LEDGER.c.seq.desc())
            .limit(1)
        ).one_or_none()
    return LedgerHead(client, row.seq, row.entry_hash) if row else LedgerHead(client, 0, GENESIS)


# ------------------------------------------------------------------------------------------------ export


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of "YYYY-MM"; ValueError otherwise."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{month!r} is not a month: write it YYYY-MM, e.g. 2025-01") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def export_month(store: Store, client: str, month: str) -> list[str]:
    """The month's entries of ``client`` as JSON Lines (canonical JSON, no newline), after a header line
    ``{"type": "head-before", "client", "month", "seq", "entry_hash"}`` naming the entry before the month
    (seq 0 and 64 zeros: the chain starts in this month). Each entry line is
    ``{"type": "entry", "client", "seq", "kind", "recorded_at", "payload", "prev_hash", "entry_hash"}``."""
    start, end = month_bounds(month)
    before = head_at(store, client, start)
    lines = [
        canonical(
            {
                "type": "head-before",
                "client": client,
                "month": month,
                "seq": before.seq,
                "entry_hash": before.entry_hash,
            }
        ).decode()
    ]
    with store.connection() as connection:
        rows = connection.execute(
            select(_LEDGER)
            .where(_LEDGER.c.client_id == client, _LEDGER.c.seq > before.seq, _LEDGER.c.recorded_at < end)
            .order_by(_LEDGER.c.seq)
        ).all()
    for row in rows:
        payload = _payload_of(row)
        line = {
            "type": "entry",
            "client": row.client_id,
            "seq": row.seq,
            "kind": row.kind,
            "recorded_at": micros(row.recorded_at),
            "payload": payload if payload is not None else row.payload,
            "prev_hash": row.prev_hash,
            "entry_hash": row.entry_hash,
        }
        lines.append(canonical(line).decode())
    return lines


_ENTRY_KEYS = frozenset({"type", "client", "seq", "kind", "recorded_at", "payload", "prev_hash", "entry_hash"})
_HEADER_KEYS = frozenset({"type", "client", "month", "seq", "entry_hash"})


def _is_hex64(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def verify_export(lines: Iterable[str | bytes]) -> tuple[bool, list[LedgerProblem], LedgerHead | None]:
    """Check an export offline: every line canonical, every hash recomputed, every link and seq in order from the
    header's head. Returns (ok, problems (the first one), the head at the end of the slice, or None if unreadable).
    """
    client = ""

    def bad(seq: int | None, what: str, message: str) -> tuple[bool, list[LedgerProblem], LedgerHead | None]:
        return False, [LedgerProblem(client, seq, what, message)], None

    parsed: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        data = raw if isinstance(raw, bytes) else raw.encode()
        data = data.rstrip(b"\n").rstrip(b"\r") if data.endswith(b"\n") else data
        if not data.strip() and number > 1:
            continue
        try:
            value = json.loads(data.decode("utf-8"))
            if not isinstance(value, dict) or canonical(value) != data:
                raise ValueError("not canonical")
        except (ValueError, TypeError, UnicodeDecodeError):
            return bad(None, "malformed", f"line {number} of the export is not canonical JSON: it was changed")
        parsed.append(value)
    if not parsed or parsed[0].get("type") != "head-before" or set(parsed[0]) != _HEADER_KEYS:
        return bad(None, "malformed", "the export does not start with its head-before line")
    header = parsed[0]
    client = str(header.get("client", ""))
    seq, prev = header.get("seq"), header.get("entry_hash")
    if not isinstance(seq, int) or not _is_hex64(prev) or (seq == 0) != (prev == GENESIS):
        return bad(None, "malformed", "the export's head-before line is not a valid head")
    try:
        start, end = month_bounds(str(header.get("month")))
    except ValueError:
        return bad(None, "malformed", "the export's head-before line does not name a month YYYY-MM")
    first_us, end_us = micros(start), micros(end)
    last_time: int | None = None
    for entry in parsed[1:]:
        expected = seq + 1
        if entry.get("type") != "entry" or set(entry) != _ENTRY_KEYS:
            return bad(expected, "malformed", f"{client}: the line for entry {expected} is not an entry")
        payload, recorded = entry["payload"], entry["recorded_at"]
        if entry["client"] != client or not isinstance(payload, dict) or not isinstance(recorded, int):
            return bad(expected, "malformed", f"{client}: the line for entry {expected} is not an entry of {client}")
        if not isinstance(entry["seq"], int) or entry["seq"] != expected:
            what = "removed" if isinstance(entry["seq"], int) and entry["seq"] > expected else "reordered"
            return bad(expected, what, f"{client}: entry {expected} was {what} (found seq {entry['seq']})")
        computed = entry_hash(client, expected, str(entry["kind"]), recorded, payload, str(entry["prev_hash"]))
        if computed != entry["entry_hash"]:
            return bad(expected, "edited", f"{client}: entry {expected} was edited (its hash does not match)")
        if entry["prev_hash"] != prev:
            return bad(expected, "forged", f"{client}: entry {expected} does not follow entry {seq}")
        if last_time is not None and recorded < last_time:
            return bad(expected, "reordered", f"{client}: entry {expected} is dated before entry {seq}")
        if recorded >= end_us or (recorded < first_us and expected > int(header["seq"]) + 1):
            return bad(expected, "malformed", f"{client}: entry {expected} is not of {header['month']}")
        seq, prev, last_time = expected, entry["entry_hash"], recorded
    return True, [], LedgerHead(client, seq, str(prev))
