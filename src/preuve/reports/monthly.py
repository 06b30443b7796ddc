"""The attestation run: every client's attestation for the month that just ended, then the e-mails.

The daemon runs it every morning (06:00 in its time zone), not only on the 1st: it is idempotent, so the extra
runs cost a query per client, and they are what retries an e-mail that failed (a mail server down on the 1st) the
next day instead of a month later, and what issues a month whose first run failed once its cause is fixed.

The month attested is the last calendar month that is over in the daemon's time zone (``tz``): on 1 November at
06:00 in Tokyo, October. Attestation periods are UTC months (the document says so), so a month that is over in
the time zone but not yet in UTC (east of UTC, early on the 1st) is left for a later run that day or the next
(``MonthlyReport.waiting``); it is never attested before its last UTC second.

Safe to run again, and from two schedulers at once: a client whose month already has a complete version is
skipped (the monthly run never issues a second version; `preuve attest` does that; a partial version issued
during the month does not count), and when two runs render the same month, the unique ``(client, month,
version)`` constraint lets only one record it (see :mod:`preuve.reports.issue`). E-mails follow, each claimed on
its row (see :mod:`preuve.reports.mail`); a failed one keeps its error on the row and is retried by the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from preuve import redact
from preuve.alerts.secrets import register_secrets
from preuve.config.loader import Config
from preuve.errors import ConfigurationError
from preuve.reports.issue import ISSUE_ERRORS, issue_attestation
from preuve.reports.mail import send_attestation
from preuve.store.db import Store
from preuve.store.ledger import month_bounds
from preuve.store.models import Attestation

log = logging.getLogger(__name__)
_CLIENT_ERRORS: tuple[type[Exception], ...] = (*ISSUE_ERRORS, ConfigurationError)


def month_just_ended(now: datetime, tz: tzinfo = UTC) -> str:
    """The last calendar month that is over at ``now`` in ``tz``: ``2026-10`` from 1 November 00:00 there."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    moment = now.astimezone(tz)
    year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@dataclass
class MonthlyReport:
    month: str
    waiting: bool = False  # the month is over in the daemon's time zone but not yet in UTC: issued by a later run
    issued: list[str] = field(default_factory=list)  # "client vN"
    skipped: list[str] = field(default_factory=list)  # clients whose month was already attested
    failed: dict[str, str] = field(default_factory=dict)  # client -> why
    emailed: list[str] = field(default_factory=list)  # "client YYYY-MM vN"
    email_failed: dict[str, str] = field(default_factory=dict)


def _to_mail(store: Store, client_id: str, just_ended: str) -> list[Attestation]:
    """The newest version of each of the client's months that has no version e-mailed yet, for the month that
    just ended and for months whose last send failed (an attestation issued by hand is not mailed on its own)."""
    with store.session() as session:
        rows = list(session.exec(select(Attestation).where(Attestation.client_id == client_id)).scalars())  # type: ignore[call-overload, arg-type]
    by_month: dict[str, list[Attestation]] = {}
    for row in rows:
        by_month.setdefault(row.month, []).append(row)
    due: list[Attestation] = []
    for month, versions in sorted(by_month.items()):
        versions = [v for v in versions if not v.partial]  # a month so far is handed over by hand, never mailed
        if not versions or any(v.emailed_at is not None for v in versions):
            continue
        newest = max(versions, key=lambda v: v.version)
        if month == just_ended or any(v.email_error for v in versions):
            due.append(newest)
    return due


def monthly_run(config: Config, store: Store, now: datetime | None = None, tz: tzinfo = UTC) -> MonthlyReport:
    moment = now or datetime.now(UTC)
    report = MonthlyReport(month_just_ended(moment, tz))
    report.waiting = month_bounds(report.month)[1] > moment
    if report.waiting:
        log.info(
            "attestations for %s wait until the month is over in UTC (%s)",
            report.month,
            month_bounds(report.month)[1].isoformat(),
            extra={"event": "attest.waiting"},
        )
    register_secrets(config)
    for client_id in sorted(config.clients):
        try:
            issued = (
                None
                if report.waiting
                else issue_attestation(config, store, client_id, report.month, now=moment, first_only=True)
            )
        except SQLAlchemyError:
            raise  # the database is away: the next run does everything again
        except _CLIENT_ERRORS as exc:
            reason = redact.mask(str(exc))
            report.failed[client_id] = reason
            log.error(
                "attestation of %s for %s not issued: %s",
                client_id,
                report.month,
                reason,
                extra={"event": "attest.failed", "client": client_id},
            )
        except Exception as exc:  # a fault in Preuve for one client must not deprive the others
            report.failed[client_id] = f"internal error: {type(exc).__name__}: {exc}"
            log.exception("attestation of %s for %s failed", client_id, report.month)
        else:
            if issued is None:
                if not report.waiting:
                    report.skipped.append(client_id)
            else:
                report.issued.append(f"{client_id} v{issued.version}")
                log.info(
                    "attestation of %s for %s issued: %s",
                    client_id,
                    report.month,
                    issued.pdf,
                    extra={"event": "attest.issued", "client": client_id, "verdict": issued.verdict},
                )
        for row in _to_mail(store, client_id, report.month):
            label = f"{client_id} {row.month} v{row.version}"
            sent, error = send_attestation(config, store, row, moment)
            if sent:
                report.emailed.append(label)
                log.info("attestation %s e-mailed", label, extra={"event": "attest.emailed", "client": client_id})
            elif error:
                report.email_failed[label] = error
                log.warning(
                    "attestation %s not e-mailed (retried on the next run): %s",
                    label,
                    error,
                    extra={"event": "attest.email_failed", "client": client_id},
                )
    return report


def zone(name: str | None) -> tzinfo:
    """The time zone named (an IANA key such as "Europe/Paris", or "UTC"); the server's own when none is given or
    the name is not one this system knows (logged)."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("unknown time zone %r: the server's own is used for the attestation month", name)
    from preuve.scheduler.daemon import local_timezone

    return local_timezone()


def run_monthly(config_dir: str, tz_name: str | None = None) -> MonthlyReport:
    """The scheduler's entry point (``preuve.scheduler.jobs.monthly_attestation``), in the daemon's time zone."""
    from preuve.scheduler.jobs import context

    with context(config_dir) as (config, store):
        return monthly_run(config, store, tz=zone(tz_name))
