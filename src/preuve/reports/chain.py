"""Is a client's ledger intact? The same answer as :func:`preuve.store.ledger.verify_chains`, a few times faster.

An attestation is never issued over a tampered chain, and the policy verdicts it carries are computed from store
rows that only the ledger vouches for, so every attestation first checks the whole chain of its client: every
hash, link, sequence number and date, and every source row (drill, probe, flip) against what its entry recorded.
For a year of hourly probes that is tens of thousands of entries, and the ledger's own walk spends most of its time
re-encoding each payload and looking for floats in it. This one relies on what :func:`ledger.append` guarantees
of an untouched entry: its stored payload *is* its canonical JSON. So the hashed document is assembled from the
stored text as is, and a source row is compared by encoding it once and comparing texts.

Anything that does not match exactly (an edited or re-encoded payload, a changed source row, a float where an
integer was) sends the client's chain through :func:`ledger.verify_chains`, which names the first problem the
way ``preuve ledger verify`` does; this module never judges a chain broken on its own. A mismatch that the
ledger's walk does not confirm (the payload was re-encoded but says the same thing) counts as intact, as it does
for ``preuve ledger verify``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import DateTime, Row, Table, select, type_coerce
from sqlalchemy.engine import Connection

from preuve.store import ledger
from preuve.store.db import Store
from preuve.store.models import metadata

_LEDGER: Table = metadata.tables["ledgerentry"]
_DRILL: Table = metadata.tables["drillrun"]
_TARGET: Table = metadata.tables["target"]
_PROBE: Table = metadata.tables["probe"]
_EPOCH_NAIVE = datetime(1970, 1, 1)  # noqa: DTZ001 - SQLite returns UTC datetimes without their offset
_US = timedelta(microseconds=1)
_PLAIN_KINDS = frozenset(ledger.KINDS)


def _text(value: Any) -> str:
    """Canonical JSON as text (floats would be written, and then simply not match a stored payload)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def verify_client(store: Store, client: str) -> ledger.LedgerProblem | None:
    """The first problem of ``client``'s chain, or None when it is intact (an empty chain is intact)."""
    with store.connection() as connection:
        rows = cast(
            list[Row[Any]],
            connection.execute(
                select(
                    _LEDGER.c.seq,
                    _LEDGER.c.kind,
                    _LEDGER.c.ref_table,
                    _LEDGER.c.ref_id,
                    _LEDGER.c.recorded_at,
                    _LEDGER.c.payload,
                    _LEDGER.c.prev_hash,
                    _LEDGER.c.entry_hash,
                )
                .where(_LEDGER.c.client_id == client)
                .order_by(_LEDGER.c.seq, _LEDGER.c.id)
            ).all(),
        )
        intact = _links_hold(client, rows) and _sources_hold(connection, client, rows)
        if intact and ledger._unrecorded_problem(connection, client, rows) is None:
            return None
    # Something differs: the ledger's own walk says what, and where (or that nothing really changed).
    statuses = ledger.verify_chains(store, client)
    return statuses[0].problem if statuses else None


def _links_hold(client: str, rows: Sequence[Row[Any]]) -> bool:
    # The hashed document's keys in canonical (sorted) order: client, kind, payload, prev_hash, recorded_at, seq.
    head = '{"client":' + _text(client) + ',"kind":'
    prev = ledger.GENESIS
    last_time = None
    for position, row in enumerate(rows, start=1):
        if row.seq != position or row.prev_hash != prev:
            return False
        if last_time is not None and row.recorded_at < last_time:
            return False
        # prev_hash equals a digest computed here (or the genesis zeros): hex, so quoting it is encoding it. Every
        # payload is checked to be canonical text in _sources_hold, so inserting it as is encodes it too.
        kind = f'"{row.kind}"' if row.kind in _PLAIN_KINDS else _text(row.kind)
        document = (
            f'{head}{kind},"payload":{row.payload},"prev_hash":"{row.prev_hash}",'
            f'"recorded_at":{ledger.micros(row.recorded_at)},"seq":{row.seq}}}'
        )
        if hashlib.sha256(document.encode()).hexdigest() != row.entry_hash:
            return False
        prev, last_time = row.entry_hash, row.recorded_at
    return True


def _sources_hold(connection: Connection, client: str, rows: Sequence[Row[Any]]) -> bool:
    """Every sourced entry's payload is, to the byte, what its source row reads now; refs match; no row twice."""
    wanted: dict[str, set[int]] = {}
    for row in rows:
        if row.kind != "note" and row.ref_table in ledger._SOURCES and row.ref_id is not None:
            wanted.setdefault(row.ref_table, set()).add(row.ref_id)
    sources = {
        table: _probe_sources(connection, client, ids) if table == "probe" else ledger._SOURCES[table](connection, ids)
        for table, ids in wanted.items()
    }
    note_drills = {row.ref_id for row in rows if row.kind == "note" and row.ref_id is not None}
    owners: dict[int, str] = {}
    for chunk in ledger._chunks(note_drills):
        for found in connection.execute(
            select(_DRILL.c.id, _TARGET.c.client_id)
            .join(_TARGET, _DRILL.c.target_id == _TARGET.c.id)
            .where(_DRILL.c.id.in_(chunk))
        ):
            owners[found.id] = found.client_id
    seen: set[tuple[str, int]] = set()
    for row in rows:
        if row.kind == "note" or row.ref_table not in ledger._SOURCES or row.ref_id is None:
            # Notes and unsourced entries are few: their stored reference is read from the payload itself.
            try:
                payload = json.loads(row.payload)
            except ValueError:
                return False
            if not isinstance(payload, dict) or _text(payload) != row.payload:
                return False
            if ledger._ref_of(payload) != (row.ref_table, row.ref_id):
                return False
            if row.kind == "note" and row.ref_id is not None and owners.get(row.ref_id) != client:
                return False
            continue
        key = (row.ref_table, row.ref_id)
        source = sources[row.ref_table].get(row.ref_id)
        if key in seen or source is None:
            return False
        seen.add(key)
        owner, kind, payload = source
        if owner != client or kind != row.kind:
            return False
        expected = _text({**payload, "ref": {"table": row.ref_table, "id": row.ref_id}})
        if expected != row.payload:
            return False
    return True


# ------------------------------------------------------------------------------------------------------- probes
# Probes are most of a chain (one an hour per target). This reads them as :func:`ledger._probe_payload` does, with
# two shortcuts: the facts text, identical from one probe to the next, is parsed once per distinct text, and times
# are taken as the driver returns them (SQLite: naive UTC) rather than through the column type. A difference
# from the ledger's reader can only make a payload differ, which sends the chain to the ledger's own walk.


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return (value - _EPOCH_NAIVE) // _US
    return ledger.micros(value)


def _probe_sources(
    connection: Connection, client: str, ids: Iterable[int]
) -> dict[int, tuple[str, str, dict[str, Any]]]:
    """The client's probes among ``ids``, read in one pass over its targets' probes in the ids' range (a year of
    hourly probes is one query, not one per 500 ids). A probe recorded in this chain but belonging to another
    client is simply not found here, which the ledger's walk then reports."""
    wanted = set(ids)
    if not wanted:
        return {}
    p = _PROBE.c
    raw = DateTime(timezone=True)
    facts_seen: dict[str, dict[str, Any]] = {}
    found: dict[int, tuple[str, str, dict[str, Any]]] = {}
    rows = connection.execute(
        select(
            p.id,
            p.ok,
            p.failure_class,
            p.message,
            type_coerce(p.started_at, raw).label("started_at"),
            type_coerce(p.finished_at, raw).label("finished_at"),
            p.reachable,
            p.credentials_ok,
            p.repository_opens,
            p.repository_id,
            p.snapshot_count,
            p.newest_snapshot_id,
            type_coerce(p.newest_snapshot_time, raw).label("newest_snapshot_time"),
            p.restic_version,
            p.host,
            p.facts,
            _TARGET.c.ref,
            _TARGET.c.client_id,
        )
        .join(_TARGET, p.target_id == _TARGET.c.id)
        .where(_TARGET.c.client_id == client, p.id >= min(wanted), p.id <= max(wanted))
    )
    for row in rows:
        if row.id not in wanted:
            continue
        facts = facts_seen.get(row.facts)
        if facts is None:
            try:
                facts = ledger._integral(json.loads(row.facts)) if row.facts else {}
            except ValueError:
                facts = {"unreadable": row.facts}
            facts_seen[row.facts] = facts
        payload = {
            "probe": row.id,
            "target": row.ref,
            "ok": row.ok,
            "failure_class": row.failure_class,
            "message": row.message,
            "started_at": _us(row.started_at),
            "finished_at": _us(row.finished_at),
            "reachable": row.reachable,
            "credentials_ok": row.credentials_ok,
            "repository_opens": row.repository_opens,
            "repository_id": row.repository_id,
            "snapshot_count": row.snapshot_count,
            "newest_snapshot_id": row.newest_snapshot_id,
            "newest_snapshot_time": _us(row.newest_snapshot_time),
            "restic_version": row.restic_version,
            "host": row.host,
            "facts": facts,
        }
        found[row.id] = (row.client_id, "probe", payload)
    return found
