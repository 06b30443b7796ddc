"""A drill's restore log in the store: one ``drillcommand`` row per restic command, keyed by (drill, seq).

Rows are written while the drill runs (:mod:`preuve.drills.live`: a row appears when its command starts, its
stderr tail is rewritten at most every second or so, and it is completed when the command ends) and completed
by :func:`preuve.store.records.finish_drill` from the drill's result. Both go through :func:`save_commands`,
which updates the row of a ``seq`` already there and inserts the others, so a command is never stored twice
whichever of the two wrote it first. Every text is masked (:func:`preuve.redact.mask`) on its way in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert, select, true, update

from preuve import redact
from preuve.drills.result import CommandLog, DrillStatus
from preuve.store.db import Store
from preuve.store.models import metadata

_COMMAND: Table = metadata.tables["drillcommand"]
_DRILL: Table = metadata.tables["drillrun"]

STOPPED_NOTE = "stopped before it finished: the drill ended while it ran"


def command_values(command: CommandLog) -> dict[str, Any]:
    """The row's columns for ``command`` (without drill and seq), masked."""
    return {
        # sorted keys is what records._json does; a list has none, so plain dumps gives the same text
        "argv": json.dumps([redact.mask(arg) for arg in command.argv], ensure_ascii=False),
        "started_at": command.started_at,
        "duration_s": command.duration_s,
        "exit_code": command.exit_code,
        "timed_out": command.timed_out,
        "stdout": redact.mask(command.stdout),
        "stderr": redact.mask(command.stderr),
        "note": redact.mask(command.note),
        "running": command.running,
    }


def save_commands(connection: Connection, drill_id: int, commands: Iterable[tuple[int, CommandLog]]) -> None:
    """Store each (seq, command) of the drill: update the row of that seq if there is one, insert it otherwise.

    A running command never overwrites a row that is already complete (a late live write loses to the result).
    """
    wanted = dict(commands)
    if not wanted:
        return
    present = set(
        connection.execute(
            select(_COMMAND.c.seq).where(_COMMAND.c.drill_id == drill_id, _COMMAND.c.seq.in_(list(wanted)))
        ).scalars()
    )
    new = [{"drill_id": drill_id, "seq": seq, **command_values(c)} for seq, c in wanted.items() if seq not in present]
    for seq in sorted(present):
        command = wanted[seq]
        statement = update(_COMMAND).where(_COMMAND.c.drill_id == drill_id, _COMMAND.c.seq == seq)
        if command.running:
            statement = statement.where(_COMMAND.c.running.is_(true()))
        connection.execute(statement.values(**command_values(command)))
    if new:
        connection.execute(insert(_COMMAND), new)


def close_running(connection: Connection, drill_ids: Sequence[int], note: str = STOPPED_NOTE) -> int:
    """Mark the drills' commands still shown as running as stopped (their exit code unknown); returns how many."""
    if not drill_ids:
        return 0
    rows = connection.execute(
        select(_COMMAND.c.id, _COMMAND.c.note).where(
            _COMMAND.c.drill_id.in_(list(drill_ids)), _COMMAND.c.running.is_(true())
        )
    ).all()
    for row in rows:
        # keep what the live log said (e.g. how much stdout it had seen) after the reason
        text = f"{note}; {row.note}" if row.note else note
        connection.execute(
            update(_COMMAND).where(_COMMAND.c.id == row.id).values(running=False, exit_code=None, note=text)
        )
    return len(rows)


def write_live(store: Store, drill_id: int, commands: Sequence[tuple[int, CommandLog]]) -> bool:
    """Store the live state of a running drill's commands, in one short transaction.

    False, and nothing written, once the drill is no longer queued or running (its result is recorded: a late
    live write must not touch a finished drill) or does not exist.
    """
    with store.connection(write=True) as connection:
        # FOR UPDATE on PostgreSQL (finish_drill takes the same lock); SQLite's write transaction holds the lock.
        row = connection.execute(select(_DRILL.c.status).where(_DRILL.c.id == drill_id).with_for_update()).one_or_none()
        if row is None or DrillStatus(row.status).final:
            return False
        save_commands(connection, drill_id, commands)
        return True
