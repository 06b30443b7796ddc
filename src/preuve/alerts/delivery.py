"""Sending pending deliveries: each one claimed by exactly one process, retried with back-off, never lost.

A delivery is claimed by a conditional UPDATE that only the one caller who saw its current attempt count can win
(``WHERE id = ? AND status = 'pending' AND attempts = ?``); the same UPDATE moves ``next_attempt_at`` past the
send's deadline, so a process that dies while sending leaves a delivery that is retried later, never one that is
stuck or sent twice by two live daemons. After a failed attempt the next one waits
``min(1 min × 2^(attempts-1), 1 h)``; after ``alerts.max_attempts`` attempts the delivery is ``failed`` for good,
its ``last_error`` kept and shown by ``preuve alerts list``. Once a channel fails during a call, its other
deliveries wait for the next call untouched: a mail server that does not answer costs one timeout per call, not
one per pending message, and everything goes out on the first call after it is back.

Messages go to the channels as configured when they are sent (an address list changed since the flip is
honoured); a channel removed from the configuration fails its pending deliveries with a reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, or_, select, update

from preuve import redact
from preuve.alerts.channels import WEBHOOK_TIMEOUT_S, ChannelError, send_message, smtp_timeout
from preuve.alerts.flips import EMAIL, FAILED, PENDING, SENT, WEBHOOK, channels, get_flip
from preuve.alerts.messages import render
from preuve.alerts.secrets import register_secrets
from preuve.config.loader import Config
from preuve.store.db import Store
from preuve.store.models import metadata

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
BATCH = 100  # deliveries looked at per call; the rest wait for the next cycle
_DELIVERY: Table = metadata.tables["alertdelivery"]


def backoff(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt."""
    return min(BACKOFF_BASE * (1 << min(max(attempts - 1, 0), 16)), BACKOFF_CAP)  # bounded: no overflow


def _send_deadline(config: Config, channel: str) -> timedelta:
    seconds = smtp_timeout(config) if channel == EMAIL else WEBHOOK_TIMEOUT_S
    return timedelta(seconds=2 * seconds + 30)  # connect, a few exchanges, and some slack


def _claim(store: Store, delivery_id: int, seen: int, now: datetime, lease_until: datetime) -> bool:
    statement = (
        update(_DELIVERY)
        .where(
            _DELIVERY.c.id == delivery_id,
            _DELIVERY.c.status == PENDING,
            _DELIVERY.c.attempts == seen,
            or_(_DELIVERY.c.next_attempt_at.is_(None), _DELIVERY.c.next_attempt_at <= now),
        )
        .values(attempts=seen + 1, next_attempt_at=lease_until)
    )
    with store.connection(write=True) as connection:
        return connection.execute(statement).rowcount == 1


def _finish(store: Store, delivery_id: int, attempt: int, **values: object) -> bool:
    statement = (
        update(_DELIVERY)
        .where(_DELIVERY.c.id == delivery_id, _DELIVERY.c.status == PENDING, _DELIVERY.c.attempts == attempt)
        .values(**values)
    )
    with store.connection(write=True) as connection:
        return connection.execute(statement).rowcount == 1


def deliver_pending(config: Config, store: Store, now: datetime | None = None) -> int:
    """Send every pending delivery that is due at ``now`` (default: the current time); how many were sent.

    Safe to call from several processes at once: each attempt is claimed by one of them. Never raises for a
    channel's failure (it is recorded on the delivery); database errors propagate.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    clock: Callable[[], datetime] = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    start = clock()
    max_attempts = config.settings.alerts.max_attempts
    with store.connection() as connection:
        due = connection.execute(
            select(_DELIVERY.c.id, _DELIVERY.c.attempts, _DELIVERY.c.flip_id, _DELIVERY.c.channel)
            .where(
                _DELIVERY.c.status == PENDING,
                or_(_DELIVERY.c.next_attempt_at.is_(None), _DELIVERY.c.next_attempt_at <= start),
            )
            .order_by(_DELIVERY.c.next_attempt_at, _DELIVERY.c.id)
            .limit(BATCH)
        ).all()
    if not due:
        return 0
    register_secrets(config)
    destinations = dict(channels(config))
    sent = 0
    broken: set[str] = set()
    for delivery_id, seen, flip_id, channel in due:
        if channel in broken:
            continue  # it just failed: one timeout per channel per call, not one per pending message
        attempt = seen + 1
        claimed_at = clock()
        if not _claim(
            store, delivery_id, seen, claimed_at, claimed_at + max(backoff(attempt), _send_deadline(config, channel))
        ):
            continue  # another process has it
        flip = get_flip(store, flip_id)
        error = ""
        note = ""
        if flip is None:  # pragma: no cover - the foreign key keeps flips
            error = f"flip {flip_id} is missing from the results database"
        else:
            try:
                note = send_message(config, channel, render(flip))
            except ChannelError as exc:
                error = str(exc)
            except Exception as exc:  # a fault in Preuve: recorded on the delivery, the daemon goes on
                log.exception("alert delivery %s raised", delivery_id)
                error = f"internal error while sending: {type(exc).__name__}: {exc}"
        finished_at = clock()
        destination = redact.mask(destinations.get(channel, ""))
        extra = {"event": "", "delivery_id": delivery_id, "flip_id": flip_id, "channel": channel, "attempt": attempt}
        if not error:
            values: dict[str, object] = {"status": SENT, "sent_at": finished_at, "last_error": redact.mask(note)}
            if destination:
                values["destination"] = destination
            if _finish(store, delivery_id, attempt, **values):
                sent += 1
                log.info(f"alert {flip_id} sent by {channel} to {destination}", extra={**extra, "event": "alert.sent"})
            continue
        error = redact.mask(error)
        broken.add(channel)
        permanent = channel not in (EMAIL, WEBHOOK) or channel not in destinations
        if attempt >= max_attempts or permanent:
            _finish(store, delivery_id, attempt, status=FAILED, last_error=error, next_attempt_at=None)
            log.error(
                f"alert {flip_id} by {channel} failed for good after {attempt} attempt(s): {error}",
                extra={**extra, "event": "alert.failed"},
            )
        else:
            retry_at = finished_at + backoff(attempt)
            _finish(store, delivery_id, attempt, last_error=error, next_attempt_at=retry_at)
            log.warning(
                f"alert {flip_id} by {channel}: attempt {attempt} of {max_attempts} failed, retry at "
                f"{retry_at:%Y-%m-%d %H:%M:%S} UTC: {error}",
                extra={**extra, "event": "alert.retry"},
            )
    return sent
