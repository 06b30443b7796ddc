"""The console's two changes to the world, shared by the pages and the API: queue a drill, acknowledge a failure.

Each is logged with the user who asked (``event`` web.drill_requested / web.acknowledged), besides the request log.
"""

from __future__ import annotations

import logging

from fastapi import HTTPException

from preuve import redact
from preuve.drills.result import DrillKind, DrillStatus
from preuve.errors import ConfigurationError
from preuve.scheduler.queue import enqueue_drill
from preuve.store.ledger import add_note
from preuve.store.models import LedgerEntry
from preuve.store.records import DrillDetail, get_drill, sync_config
from preuve.web.context import WebContext
from preuve.web.users import User

log = logging.getLogger("preuve.web")

ACKNOWLEDGEABLE = (DrillStatus.FAILED, DrillStatus.ERROR, DrillStatus.INTERRUPTED)
MAX_NOTE = 4000


def author(user: User) -> str:
    return f"{user.name} (web console)"


def queue_drill(context: WebContext, user: User, ref: str, kind: str) -> int:
    try:
        drill_kind = DrillKind(kind)
    except ValueError:
        raise HTTPException(422, f"unknown drill kind {kind!r}: sample, full or integrity") from None
    config = context.config()
    try:
        config.target(ref)
    except ConfigurationError as exc:
        raise HTTPException(404, "; ".join(exc.problems)) from None
    try:
        drill_id = enqueue_drill(context.store, ref, drill_kind, author(user))
    except LookupError:
        # Configured but not yet in the store (a job file added since the last sync): sync, then queue.
        sync_config(context.store, config)
        drill_id = enqueue_drill(context.store, ref, drill_kind, author(user))
    context.board.invalidate()
    log.info(
        "%s queued drill %d of %s (%s)",
        user.name,
        drill_id,
        ref,
        drill_kind.value,
        extra={"event": "web.drill_requested", "user": user.name, "drill": drill_id, "target": ref},
    )
    return drill_id


def acknowledge(context: WebContext, user: User, detail: DrillDetail, note: str) -> LedgerEntry:
    note = note.strip()
    if not note:
        raise HTTPException(422, "write a note: what was done about this failure, or why it is accepted")
    if len(note) > MAX_NOTE:
        raise HTTPException(422, f"the note is too long ({len(note)} characters; at most {MAX_NOTE})")
    if detail.status not in ACKNOWLEDGEABLE:
        raise HTTPException(409, f"drill {detail.id} is {detail.status.value}: only failures are acknowledged")
    entry = add_note(context.store, detail.client, redact.mask(note), author(user), drill_id=detail.id)
    log.info(
        "%s acknowledged drill %d of %s (ledger entry %d)",
        user.name,
        detail.id,
        detail.target,
        entry.seq,
        extra={"event": "web.acknowledged", "user": user.name, "drill": detail.id, "seq": entry.seq},
    )
    return entry


def drill_or_404(context: WebContext, drill_id: int) -> DrillDetail:
    detail = get_drill(context.store, drill_id)
    if detail is None:
        raise HTTPException(404, f"no drill {drill_id}")
    return detail
