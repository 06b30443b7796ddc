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
        if intact and ledger.unrecorded_problem(connection, client, rows) is None:
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
        if row.kind != "note" and row.ref_table in ledger.SOURCES and row.ref_id is not None:
            wanted.setdefault(row.ref_table, set()).add(row.ref_id)
    probes = _probe_texts(connection, client, wanted.pop("probe", set()))
    sources = {table: ledger.SOURCES[table](connection, ids) for table, ids in wanted.items()}
    note_drills = {row.ref_id for row in rows if row.kind == "note" and row.ref_id is not None}
    owners: dict[int, str] = {}
    for chunk in ledger.chunks(note_drills):
        for found in connection.execute(
            select(_DRILL.c.id, _TARGET.c.client_id)
            .join(_TARGET, _DRILL.c.target_id == _TARGET.c.id)
            .where(_DRILL.c.id.in_(chunk))
        ):
            owners[found.id] = found.client_id
    seen: set[tuple[str, int]] = set()
    for row in rows:
        if row.kind == "note" or row.ref_table not in ledger.SOURCES or row.ref_id is None:
            # Notes and unsourced entries are few: their stored reference is read from the payload itself.
            try:
                payload = json.loads(row.payload)
            except ValueError:
                return False
            if not isinstance(payload, dict) or _text(payload) != row.payload:
                return False
            if ledger.ref_of(payload) != (row.ref_table, row.ref_id):
                return False
            if row.kind == "note" and row.ref_id is not None and owners.get(row.ref_id) != client:
                return False
            continue
        key = (row.ref_table, row.ref_id)
        if key in seen:
            return False
        seen.add(key)
        if row.ref_table == "probe":
            if probes.get(row.ref_id) != row.payload or row.kind != "probe":
                return False
            continue
        source = sources[row.ref_table].get(row.ref_id)
        if source is None:
            return False
        owner, kind, payload = source
        if owner != client or kind != row.kind:
            return False
        expected = _text({**payload, "ref": {"table": row.ref_table, "id": row.ref_id}})
        if expected != row.payload:
            return False
    return True


# ------------------------------------------------------------------------------------------------------- probes
# Probes are most of a chain (one an hour per target). Their entries' text is written here directly, in canonical
# form, from the columns :func:`ledger.probe_payload` reads: keys in sorted order, strings JSON-escaped as
# json.dumps does, the facts text (identical from one probe to the next) parsed and re-encoded once per distinct
# text, times taken as the driver returns them (SQLite: naive UTC). Anything this gets wrong can only make a text
# differ from the stored one, which sends the chain to the ledger's own walk.


def _us(value: datetime | None) -> str:
    if value is None:
        return "null"
    if value.tzinfo is None:
        return str((value - _EPOCH_NAIVE) // _US)
    return str(ledger.micros(value))


def _number(value: Any) -> str:
    return "null" if value is None else str(int(value))


class _Strings(dict[Any, str]):
    """JSON strings (or null), encoded once per distinct value: hosts, versions and messages repeat."""

    def __missing__(self, value: Any) -> str:
        encoded = "null" if value is None else _text(str(value))
        self[value] = encoded
        return encoded


def _probe_texts(connection: Connection, client: str, ids: Iterable[int]) -> dict[int, str]:
    """Probe id -> the canonical payload text its entry must hold, for the client's probes among ``ids``, read in one
    pass over its targets' probes in the ids' range. A probe recorded in this chain but belonging to another client
    is not found here, which the ledger's walk then reports."""
    wanted = set(ids)
    if not wanted:
        return {}
    p = _PROBE.c
    raw = DateTime(timezone=True)
    strings = _Strings()
    facts_seen: dict[str, str] = {}
    found: dict[int, str] = {}
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
        )
        .join(_TARGET, p.target_id == _TARGET.c.id)
        .where(_TARGET.c.client_id == client, p.id >= min(wanted), p.id <= max(wanted))
    )
    flag = {None: "null", True: "true", False: "false"}
    for (
        probe_id,
        ok,
        failure_class,
        message,
        started_at,
        finished_at,
        reachable,
        credentials_ok,
        repository_opens,
        repository_id,
        snapshot_count,
        newest_snapshot_id,
        newest_snapshot_time,
        restic_version,
        host,
        facts_text,
        ref,
    ) in rows:
        if probe_id not in wanted:
            continue
        facts = facts_seen.get(facts_text)
        if facts is None:
            try:
                parsed = ledger.integral(json.loads(facts_text)) if facts_text else {}
            except ValueError:
                parsed = {"unreadable": facts_text}
            facts = facts_seen[facts_text] = _text(parsed)
        # The keys of ledger.probe_payload plus "ref", in sorted order.
        found[probe_id] = (
            f'{{"credentials_ok":{flag[credentials_ok]},"facts":{facts},'
            f'"failure_class":{strings[failure_class]},"finished_at":{_us(finished_at)},'
            f'"host":{strings[host]},"message":{strings[message]},'
            f'"newest_snapshot_id":{strings[newest_snapshot_id]},'
            f'"newest_snapshot_time":{_us(newest_snapshot_time)},"ok":{flag[ok]},"probe":{probe_id},'
            f'"reachable":{flag[reachable]},"ref":{{"id":{probe_id},"table":"probe"}},'
            f'"repository_id":{strings[repository_id]},"repository_opens":{flag[repository_opens]},'
            f'"restic_version":{strings[restic_version]},"snapshot_count":{_number(snapshot_count)},'
            f'"started_at":{_us(started_at)},"target":{strings[ref]}}}'
        )
    return found
