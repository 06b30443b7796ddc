"""Reading a client's ledger for one period: its slice, and the few earlier entries the period needs.

A period's entries are the slice of the client's chain recorded in ``[start, end)``: from the entry after the head
that precedes ``start`` to the head at ``end``, found by seq range, exactly the entries ``preuve ledger export``
writes for the month. Some facts of the period rest on earlier entries, read backwards by kind and seq, no further
than needed: the drills that tell whether a failure was still open when the period began, when a target last
passed a full restore, and which integrity parts were read within the window; the last probe of each target
before the period, which says how old its newest snapshot was when the period began.

Times in a chain never go backwards (:func:`preuve.store.ledger.append`), so ordering by time and by seq agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from preuve.store.ledger import GENESIS, LedgerHead
from preuve.store.models import metadata

_LEDGER: Table = metadata.tables["ledgerentry"]
DRILL_KINDS = ("drill", "integrity")
_CHUNK = 500


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str  # drill | integrity | probe | policy | note
    recorded_at: datetime
    payload: dict[str, Any]

    @property
    def target(self) -> str | None:
        value = self.payload.get("target")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Slice:
    before: LedgerHead  # the entry before the period (seq 0 and 64 zeros: the chain starts in it)
    end: LedgerHead  # the last entry recorded before the period's end
    entries: tuple[Entry, ...]  # (before.seq, end.seq], oldest first


def head_before(connection: Connection, client: str, moment: datetime) -> LedgerHead:
    """The client's newest entry recorded before ``moment``, through the (client, recorded_at, seq) index."""
    row = connection.execute(
        select(_LEDGER.c.seq, _LEDGER.c.entry_hash)
        .where(_LEDGER.c.client_id == client, _LEDGER.c.recorded_at < moment)
        .order_by(_LEDGER.c.recorded_at.desc(), _LEDGER.c.seq.desc())
        .limit(1)
    ).one_or_none()
    return LedgerHead(client, row.seq, row.entry_hash) if row else LedgerHead(client, 0, GENESIS)


def _entry(row: Any) -> Entry:
    payload = json.loads(row.payload)  # the chain was verified first: every payload is a JSON object
    return Entry(row.seq, row.kind, row.recorded_at, payload if isinstance(payload, dict) else {})


def _columns() -> Sequence[Any]:
    return (_LEDGER.c.seq, _LEDGER.c.kind, _LEDGER.c.recorded_at, _LEDGER.c.payload)


def read_slice(connection: Connection, client: str, start: datetime, end: datetime) -> Slice:
    before = head_before(connection, client, start)
    last = head_before(connection, client, end)
    rows = connection.execute(
        select(*_columns())
        .where(_LEDGER.c.client_id == client, _LEDGER.c.seq > before.seq, _LEDGER.c.seq <= last.seq)
        .order_by(_LEDGER.c.seq)
    ).all()
    return Slice(before, last, tuple(_entry(row) for row in rows))


def backwards(connection: Connection, client: str, kinds: Sequence[str], upto_seq: int) -> Iterator[Entry]:
    """Entries of these kinds with seq <= ``upto_seq``, newest first, read a chunk at a time as the caller goes."""
    cursor = upto_seq
    while cursor > 0:
        rows = connection.execute(
            select(*_columns())
            .where(_LEDGER.c.client_id == client, _LEDGER.c.kind.in_(kinds), _LEDGER.c.seq <= cursor)
            .order_by(_LEDGER.c.seq.desc())
            .limit(_CHUNK)
        ).all()
        for row in rows:
            yield _entry(row)
        if len(rows) < _CHUNK:
            return
        cursor = rows[-1].seq - 1


def read_back(
    connection: Connection, client: str, kinds: Sequence[str], upto_seq: int, enough: Callable[[Entry], bool]
) -> list[Entry]:
    """Entries read backwards until ``enough(entry)`` says the last one read completes what is needed; oldest
    first."""
    found: list[Entry] = []
    for entry in backwards(connection, client, kinds, upto_seq):
        found.append(entry)
        if enough(entry):
            break
    found.reverse()
    return found


def read_kind(connection: Connection, client: str, kind: str, after_seq: int, upto_seq: int) -> list[Entry]:
    """Every entry of one kind in (after_seq, upto_seq], oldest first (notes: a handful a month)."""
    rows = connection.execute(
        select(*_columns())
        .where(
            _LEDGER.c.client_id == client,
            _LEDGER.c.kind == kind,
            _LEDGER.c.seq > after_seq,
            _LEDGER.c.seq <= upto_seq,
        )
        .order_by(_LEDGER.c.seq)
    ).all()
    return [_entry(row) for row in rows]
